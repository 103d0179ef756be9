import * as fs from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import type { Clock } from '../../../src/clock';
import { GENESIS_HASH } from '../../../src/decisionlog/hash-chain';
import { recordWithSecrets, waitFor } from '../../helpers/decisionlog-fixtures';
import { count, segmentFile, spoolDir, startOn } from '../../helpers/spool-files';

/**
 * When `next` is set, the next write of event lines (a string past 100 chars) writes only its first 10 bytes;
 * while `failing` > 0, such writes fail with ENOSPC (and count down).
 */
const short = vi.hoisted(() => ({ next: false, failing: 0 }));

vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  const writeSync = ((fd: number, data: unknown, ...rest: unknown[]) => {
    if (typeof data === 'string' && data.length > 100) {
      if (short.failing > 0) {
        short.failing--;
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      }
      if (short.next) {
        short.next = false;
        return real.writeSync(fd, data.slice(0, 10));
      }
    }
    return (real.writeSync as (...a: unknown[]) => number)(fd, data, ...rest);
  }) as typeof real.writeSync;
  return { ...real, default: { ...real, writeSync }, writeSync };
});

describe('a short write to the spool', () => {
  it('is cut off and counted as spool_error; the next event links to the last whole line', async () => {
    const dir = spoolDir();
    const run = await startOn(dir);
    short.next = true;
    const lost = recordWithSecrets(1);
    run.log.emit(lost.record, lost.decision);
    await waitFor(async () => (await count(run.metrics.decisionLogLost, 'why', 'spool_error')) === 1, 'the short write counted');
    const kept = recordWithSecrets(2);
    run.log.emit(kept.record, kept.decision);
    await waitFor(() => run.sink.ids.includes(kept.decision.id), 'the next event delivered');
    expect(run.sink.ids).toEqual([kept.decision.id]);
    expect((JSON.parse(run.sink.lines[0] as string) as { prev_hash: string }).prev_hash).toBe(GENESIS_HASH);
    expect(fs.readFileSync(segmentFile(dir, 1), 'utf8')).toBe(`${run.sink.lines[0]}\n`);
    await run.log.close();
  });

  it('that fails on every flush is counted each time and logged once a second, not once a flush', async () => {
    const frozen: Clock = { nowMs: () => 1_000_000, monotonicNs: () => 0n };
    const run = await startOn(spoolDir(), { clock: frozen });
    short.failing = 50;
    for (let i = 0; i < 50; i++) {
      const { record, decision } = recordWithSecrets(i);
      run.log.emit(record, decision);
      await new Promise((r) => setImmediate(r));
    }
    await waitFor(async () => (await count(run.metrics.decisionLogLost, 'why', 'spool_error')) === 50, 'all 50 losses counted');
    expect(run.logged.filter((l) => (l.fields as { code?: string }).code === 'ERR_DECISIONLOG_SPOOL')).toHaveLength(1);
    await run.log.close();
  });
});
