import * as fs from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import { GENESIS_HASH } from '../../../src/decisionlog/hash-chain';
import { recordWithSecrets, waitFor } from '../../helpers/decisionlog-fixtures';
import { count, segmentFile, spoolDir, startOn } from '../../helpers/spool-files';

/** When set, the next write of an event line (a string past 100 chars) writes only its first 10 bytes. */
const short = vi.hoisted(() => ({ next: false }));

vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  const writeSync = ((fd: number, data: unknown, ...rest: unknown[]) => {
    if (short.next && typeof data === 'string' && data.length > 100) {
      short.next = false;
      return real.writeSync(fd, data.slice(0, 10));
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
});
