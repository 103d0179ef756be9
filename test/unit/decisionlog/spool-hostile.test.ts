import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { recordWithSecrets, waitFor } from '../../helpers/decisionlog-fixtures';
import { count, segmentFile, spoolDir, startOn, writeSegment, type SpoolRun } from '../../helpers/spool-files';

/** Emits one decision and waits until the sink has it: the pipeline still logs after whatever went before. */
async function stillLogs(run: SpoolRun): Promise<void> {
  const { record, decision } = recordWithSecrets(1);
  run.log.emit(record, decision);
  await waitFor(() => run.sink.ids.includes(decision.id), 'a new decision at the sink');
}

/** Replaces a file by a directory that holds a file (neither readable as a segment nor removable by unlink). */
function replaceByDirectory(file: string): void {
  rmSync(file, { force: true });
  mkdirSync(file);
  writeFileSync(join(file, 'x'), '');
}

function spoolCodes(run: SpoolRun): string[] {
  return run.logged.map((l) => (l.fields as { code?: string }).code ?? '').filter((c) => c === 'ERR_DECISIONLOG_SPOOL');
}

describe('spool failures while shipping are retried, never the end of the shipper', () => {
  it('sets aside a segment that became unreadable, counts it, and delivers the segments after it', async () => {
    const dir = spoolDir();
    writeSegment(dir, 1, ['a1', 'a2']);
    writeSegment(dir, 2, ['b1']);
    writeSegment(dir, 3, ['c1']);
    const run = await startOn(dir);
    run.sink.beforeAck = (ids) => ids.includes('a1') && replaceByDirectory(segmentFile(dir, 2));
    await waitFor(() => run.sink.ids.includes('c1'), 'the segment after the unreadable one');
    expect(run.sink.ids).toEqual(['a1', 'a2', 'c1']);
    expect(await count(run.metrics.decisionLogSpoolFaults, 'why', 'unreadable')).toBe(1);
    expect(readdirSync(dir).filter((f) => f.startsWith('seg-000000000002.log.unreadable-'))).toHaveLength(1);
    expect(spoolCodes(run)).toHaveLength(1);
    await stillLogs(run);
    await run.log.close();
  });

  it('reports a delivered segment that cannot be deleted, and delivers on', async () => {
    const dir = spoolDir();
    writeSegment(dir, 1, ['a1']);
    writeSegment(dir, 2, ['b1']);
    const run = await startOn(dir);
    run.sink.beforeAck = (ids) => ids.includes('a1') && replaceByDirectory(segmentFile(dir, 1));
    await waitFor(() => run.sink.ids.includes('b1'), 'the second segment');
    await stillLogs(run);
    expect(await count(run.metrics.decisionLogSpoolFaults, 'why', 'release')).toBe(1);
    expect(spoolCodes(run)).toHaveLength(1);
    await run.log.close();
  });

  it('reports a cursor that cannot be saved and delivers every event once', async () => {
    const dir = spoolDir();
    writeSegment(dir, 1, ['a1']);
    writeSegment(dir, 2, ['b1']);
    replaceByDirectory(join(dir, 'cursor-rec.json.tmp'));
    const run = await startOn(dir);
    await stillLogs(run);
    expect(run.sink.ids.slice(0, 2)).toEqual(['a1', 'b1']);
    expect(run.sink.ids).toHaveLength(3);
    expect(await count(run.metrics.decisionLogSpoolFaults, 'why', 'ship')).toBeGreaterThanOrEqual(1);
    expect(spoolCodes(run).length).toBeGreaterThanOrEqual(1);
    await run.log.close();
  });
});
