import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GENESIS_HASH, lineHash, verifyChain } from '../../../src/decisionlog/hash-chain';
import { FileSink } from '../../../src/decisionlog/sink-file';
import { HttpSink } from '../../../src/decisionlog/sink-http';
import { pipeline, recordWithSecrets, waitFor } from '../../helpers/decisionlog-fixtures';
import { LogService } from '../../helpers/log-service';
import { count, eventLine, segmentFile, spoolDir, startOn, writeSegment, type SpoolRun } from '../../helpers/spool-files';
import { tempDir } from '../../helpers/verdict-harness';

/** Emits one decision and waits until the sink has it: the pipeline still logs after whatever went before. */
async function stillLogs(run: SpoolRun): Promise<void> {
  const { record, decision } = recordWithSecrets(1);
  run.log.emit(record, decision);
  await waitFor(() => run.sink.ids.includes(decision.id), 'a new decision at the sink');
}

/** Replaces a file by a directory that holds a file (neither readable as a segment nor removable by unlink). */
function replaceByDirectory(file: string): void {
  rmSync(file, { force: true });
  mkdirSync(file, { recursive: true });
  writeFileSync(join(file, 'x'), '');
}

/** Batches of one line each: a sink's hook on one batch runs before the next line is read. */
const oneLinePerBatch = { shipper: { batchBytes: 1, batchDelayMs: 0, minRetryDelayMs: 5, maxRetryDelayMs: 50 } };

function spoolCodes(run: SpoolRun): string[] {
  return run.logged.map((l) => (l.fields as { code?: string }).code ?? '').filter((c) => c === 'ERR_DECISIONLOG_SPOOL');
}

describe('spool failures while shipping are retried, never the end of the shipper', () => {
  it('sets aside a segment that became unreadable, counts it, and delivers the segments after it', async () => {
    const dir = spoolDir();
    writeSegment(dir, 1, ['a1', 'a2']);
    writeSegment(dir, 2, ['b1']);
    writeSegment(dir, 3, ['c1']);
    const run = await startOn(dir, oneLinePerBatch);
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
    const run = await startOn(dir, oneLinePerBatch);
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
    // The save fails after the batch is acknowledged: wait for it rather than race it.
    await waitFor(async () => (await count(run.metrics.decisionLogSpoolFaults, 'why', 'ship')) >= 1, 'the failed save counted');
    expect(spoolCodes(run).length).toBeGreaterThanOrEqual(1);
    await run.log.close();
  });
});

/** Whether this process may set the immutable attribute here (root, a filesystem that has it). */
/**
 * The immutable attribute needs root and a filesystem that has it (ext4, xfs, btrfs; not tmpfs): the suite
 * runs as root (README), so a machine without it fails this test with the reason rather than skipping it.
 */
function requireChattr(path: string): void {
  try {
    execFileSync('chattr', ['+i', path], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`chattr +i ${path} failed (needs root and ext4/xfs/btrfs): ${(err as Error).message}`);
  }
}

function asideAs(dir: string, n: number, why: string): string[] {
  return readdirSync(dir).filter((f) => f.startsWith(`${basename(segmentFile(dir, n))}.${why}-`));
}

describe('spool files that are not regular files are set aside, never opened through', () => {
  it('starts with a FIFO as the last segment (without blocking on it) and delivers the segments before it', async () => {
    const dir = spoolDir();
    writeSegment(dir, 1, ['a1']);
    execFileSync('mkfifo', [segmentFile(dir, 2)]);
    const run = await startOn(dir);
    await waitFor(() => run.sink.ids.includes('a1'), 'the segment before the FIFO');
    await stillLogs(run);
    expect(asideAs(dir, 2, 'not_regular')).toHaveLength(1);
    expect(await count(run.metrics.decisionLogSpoolFaults, 'why', 'not_regular')).toBe(1);
    await run.log.close();
  });

  it('never writes through a last segment that is a symlink: the file it names is left as it was', async () => {
    const dir = spoolDir();
    const victim = join(tempDir(), 'victim.txt');
    writeFileSync(victim, 'keep me\npartial');
    writeSegment(dir, 1, ['a1']);
    symlinkSync(victim, segmentFile(dir, 2));
    const run = await startOn(dir);
    await waitFor(() => run.sink.ids.includes('a1'), 'the segment before the symlink');
    await stillLogs(run);
    await run.log.close();
    expect(readFileSync(victim, 'utf8')).toBe('keep me\npartial');
    expect(asideAs(dir, 2, 'not_regular')).toHaveLength(1);
  });

  it('never ships what a middle segment symlink points to', async () => {
    const dir = spoolDir();
    const other = join(tempDir(), 'elsewhere.log');
    writeFileSync(other, `${JSON.stringify({ decision_id: 'not-ours' })}\n`);
    writeSegment(dir, 1, ['a1']);
    symlinkSync(other, segmentFile(dir, 2));
    writeSegment(dir, 3, ['c1']);
    const run = await startOn(dir);
    await waitFor(() => run.sink.ids.includes('c1'), 'the segment after the symlink');
    expect(run.sink.ids).toEqual(['a1', 'c1']);
    expect(asideAs(dir, 2, 'not_regular')).toHaveLength(1);
    await run.log.close();
  });

  it('starts with a directory as the last segment: sets it aside and starts a new segment', async () => {
    const dir = spoolDir();
    writeSegment(dir, 1, ['a1']);
    replaceByDirectory(segmentFile(dir, 2));
    const run = await startOn(dir);
    await stillLogs(run);
    expect(run.sink.ids[0]).toBe('a1');
    expect(asideAs(dir, 2, 'not_regular')).toHaveLength(1);
    expect(readdirSync(dir)).toContain(basename(segmentFile(dir, 3)));
    await run.log.close();
  });

  it('starts with an immutable last segment: delivers it and appends to a new segment after it', async () => {
    const dir = spoolDir();
    writeSegment(dir, 1, ['a1']);
    requireChattr(segmentFile(dir, 1));
    try {
      const run = await startOn(dir);
      await stillLogs(run);
      expect(run.sink.ids[0]).toBe('a1');
      expect(await count(run.metrics.decisionLogSpoolFaults, 'why', 'sealed')).toBe(1);
      expect(readdirSync(dir)).toContain(basename(segmentFile(dir, 2)));
      await run.log.close();
    } finally {
      execFileSync('chattr', ['-i', segmentFile(dir, 1)]);
    }
  });

  it('sets aside a segment replaced by a FIFO while shipping, without blocking delivery', async () => {
    const dir = spoolDir();
    writeSegment(dir, 1, ['a1']);
    writeSegment(dir, 2, ['b1']);
    writeSegment(dir, 3, ['c1']);
    const run = await startOn(dir, oneLinePerBatch);
    run.sink.beforeAck = (ids) => {
      if (!ids.includes('a1')) return;
      rmSync(segmentFile(dir, 2));
      execFileSync('mkfifo', [segmentFile(dir, 2)]);
    };
    await waitFor(() => run.sink.ids.includes('c1'), 'the segment after the FIFO');
    expect(run.sink.ids).toEqual(['a1', 'c1']);
    expect(asideAs(dir, 2, 'unreadable')).toHaveLength(1);
    await run.log.close();
  });
});

describe('a saved cursor is resumed from only when it names a line start in a segment held', () => {
  /** Segments 1 (a1, a2) and 2 (b1), and the sink's cursor file holding `cursor`. */
  function spoolWithCursor(cursor: string): string {
    const dir = spoolDir();
    writeSegment(dir, 1, ['a1', 'a2']);
    writeSegment(dir, 2, ['b1']);
    writeFileSync(join(dir, 'cursor-rec.json'), cursor);
    return dir;
  }

  it.each([
    ['a segment past the newest', { segment: 99_999_999, offset: 0 }],
    ['a segment far before the oldest', { segment: -1_000_000_000_000, offset: 0 }],
    ['an offset inside a line', { segment: 1, offset: 5 }],
    ['a negative offset', { segment: 1, offset: -3 }],
    ['an offset past the end of its segment', { segment: 1, offset: 1_000_000 }],
    ['content that is not JSON', 'not json'],
  ])('starts the sink again at the oldest segment, warning, for a cursor with %s', async (_what, cursor) => {
    const dir = spoolWithCursor(typeof cursor === 'string' ? cursor : JSON.stringify(cursor));
    const run = await startOn(dir);
    await waitFor(() => run.sink.ids.includes('b1'), 'the last spooled event');
    expect(run.sink.ids).toEqual(['a1', 'a2', 'b1']);
    expect(await count(run.metrics.decisionLogSpoolFaults, 'why', 'cursor')).toBe(1);
    await run.log.close();
  });

  it('resumes from a cursor at a line start in a segment held', async () => {
    const dir = spoolWithCursor(JSON.stringify({ segment: 1, offset: Buffer.byteLength(`${eventLine('a1')}\n`) }));
    const run = await startOn(dir);
    await waitFor(() => run.sink.ids.includes('b1'), 'the last spooled event');
    expect(run.sink.ids).toEqual(['a2', 'b1']);
    expect(await count(run.metrics.decisionLogSpoolFaults, 'why', 'cursor')).toBe(0);
    await run.log.close();
  });
});

describe('segment numbers with gaps', () => {
  it('reads on from a segment to the next one held, however far its number', async () => {
    const dir = spoolDir();
    writeSegment(dir, 1, ['a1']);
    writeSegment(dir, 999_999_999_999, ['z1']);
    const run = await startOn(dir);
    await waitFor(() => run.sink.ids.includes('z1'), 'the far segment');
    await stillLogs(run);
    expect(run.sink.ids.slice(0, 2)).toEqual(['a1', 'z1']);
    await run.log.close();
  });
});

describe('segment numbers past twelve digits', () => {
  it('reads segments numbered past 999999999999 (13-digit names), in numeric order', async () => {
    const dir = spoolDir();
    writeSegment(dir, 999_999_999_999, ['y1']);
    writeSegment(dir, 1_000_000_000_000, ['z1']);
    expect(readdirSync(dir)).toContain('seg-1000000000000.log');
    const run = await startOn(dir);
    await waitFor(() => run.sink.ids.includes('z1'), 'the 13-digit segment');
    expect(run.sink.ids).toEqual(['y1', 'z1']);
    await run.log.close();
  });

  it('sets aside, counted, a file named like a segment but not as verdict names one', async () => {
    const dir = spoolDir();
    writeSegment(dir, 1, ['a1']);
    writeFileSync(join(dir, 'seg-0000000000002.log'), `${eventLine('b1')}\n`);
    const run = await startOn(dir);
    await stillLogs(run);
    expect(run.sink.ids).not.toContain('b1');
    expect(await count(run.metrics.decisionLogSpoolFaults, 'why', 'misnamed')).toBe(1);
    expect(readdirSync(dir).filter((f) => f.startsWith('seg-0000000000002.log.misnamed-'))).toHaveLength(1);
    await run.log.close();
  });
});

describe('bytes that hold no whole event are skipped and counted, never a stall', () => {
  const torn = '{"decision_id":"torn","pad":"';

  it('skips the torn end of a sealed segment, counts it once, and delivers the next segment', async () => {
    const dir = spoolDir();
    writeSegment(dir, 1, ['a1'], torn);
    writeSegment(dir, 2, ['b1']);
    const run = await startOn(dir);
    await waitFor(() => run.sink.ids.includes('b1'), 'the segment after the torn one');
    expect(run.sink.ids).toEqual(['a1', 'b1']);
    expect(await count(run.metrics.decisionLogLost, 'why', 'torn')).toBe(1);
    await run.log.close();
  });

  it('counts a torn end once however many sinks read past it', async () => {
    const dir = spoolDir();
    writeSegment(dir, 1, ['a1'], torn);
    writeSegment(dir, 2, ['b1']);
    const run = await startOn(dir, {}, ['one', 'two']);
    await waitFor(() => run.sinks.every((s) => s.ids.includes('b1')), 'both sinks past the torn segment');
    expect(await count(run.metrics.decisionLogLost, 'why', 'torn')).toBe(1);
    await run.log.close();
  });

  it('cuts the torn end of the last segment at start and counts it', async () => {
    const dir = spoolDir();
    writeSegment(dir, 1, ['a1'], torn);
    const run = await startOn(dir);
    await stillLogs(run);
    expect(run.sink.ids[0]).toBe('a1');
    expect(run.sink.ids).toHaveLength(2);
    expect(await count(run.metrics.decisionLogLost, 'why', 'torn')).toBe(1);
    await run.log.close();
  });

  it('skips a line longer than the longest line verdict writes, counts it, and delivers the lines around it', async () => {
    const dir = spoolDir();
    const maxQueueBytes = 64 * 1024;
    const big = JSON.stringify({ decision_id: 'big', pad: 'x'.repeat(4 * maxQueueBytes) });
    writeSegment(dir, 1, ['a1'], `${big}\n${eventLine('a2')}\n`);
    writeSegment(dir, 2, ['b1']);
    const run = await startOn(dir, { maxQueueBytes });
    await waitFor(() => run.sink.ids.includes('b1'), 'the segment after the long line');
    expect(run.sink.ids).toEqual(['a1', 'a2', 'b1']);
    expect(await count(run.metrics.decisionLogLost, 'why', 'too_long')).toBe(1);
    await run.log.close();
  });

  it('reports a segment cut short while shipping and delivers what is left of it and what follows', async () => {
    const dir = spoolDir();
    writeSegment(dir, 1, ['a1']);
    writeSegment(dir, 2, ['b1', 'b2']);
    writeSegment(dir, 3, ['c1']);
    const run = await startOn(dir, oneLinePerBatch);
    run.sink.beforeAck = (ids) => ids.includes('a1') && truncateSync(segmentFile(dir, 2), Buffer.byteLength(`${eventLine('b1')}\n`) + 5);
    await waitFor(() => run.sink.ids.includes('c1'), 'the segment after the cut one');
    expect(run.sink.ids).toEqual(['a1', 'b1', 'c1']);
    expect(await count(run.metrics.decisionLogSpoolFaults, 'why', 'truncated')).toBe(1);
    expect(await count(run.metrics.decisionLogLost, 'why', 'torn')).toBe(1);
    await run.log.close();
  });
});

/** Emits n decisions, one event-loop turn apart (one spool append each); returns their ids. */
async function emitMany(run: SpoolRun, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const { record, decision } = recordWithSecrets(i);
    run.log.emit(record, decision);
    ids.push(decision.id);
    await new Promise((r) => setImmediate(r));
  }
  return ids;
}

describe('a segment rotation that fails part-way', () => {
  const small = { spoolSegmentBytes: 2048 };

  it('goes on appending and delivering when chain-head cannot be written', async () => {
    const dir = spoolDir();
    replaceByDirectory(join(dir, 'chain-head.tmp'));
    const run = await startOn(dir, small);
    const ids = await emitMany(run, 20);
    await waitFor(() => run.sink.ids.length === 20, 'all 20 events');
    expect(run.sink.ids).toEqual(ids);
    expect(await count(run.metrics.decisionLogSpoolFaults, 'why', 'chain_head')).toBeGreaterThanOrEqual(2);
    expect(await count(run.metrics.decisionLogLost, 'why', 'spool_error')).toBe(0);
    await run.log.close();
  });

  it('goes on appending to the current segment when the next one cannot be opened', async () => {
    const dir = spoolDir();
    const run = await startOn(dir, small);
    replaceByDirectory(segmentFile(dir, 2));
    const ids = await emitMany(run, 20);
    await waitFor(() => run.sink.ids.length === 20, 'all 20 events');
    expect(run.sink.ids).toEqual(ids);
    expect(await count(run.metrics.decisionLogSpoolFaults, 'why', 'rotate')).toBeGreaterThanOrEqual(1);
    expect(await count(run.metrics.decisionLogLost, 'why', 'spool_error')).toBe(0);
    await run.log.close();
  });

  it('keeps delivered segments while chain-head cannot be written, so the chain continues after a restart', async () => {
    const dir = spoolDir();
    writeSegment(dir, 1, ['a1']);
    replaceByDirectory(segmentFile(dir, 2)); // set aside at start: a new, empty segment 3 follows
    replaceByDirectory(join(dir, 'chain-head.tmp'));
    const first = await startOn(dir);
    await waitFor(() => first.sink.ids.includes('a1'), 'a1 delivered');
    await first.log.close();
    expect(existsSync(segmentFile(dir, 1))).toBe(true);
    rmSync(join(dir, 'chain-head.tmp'), { recursive: true });
    const second = await startOn(dir);
    await stillLogs(second);
    const last = JSON.parse(second.sink.lines.at(-1) as string) as { prev_hash: string };
    expect(last.prev_hash).toBe(lineHash(eventLine('a1')));
    await second.log.close();
  });
});

describe('spooled lines that are not JSON objects', () => {
  const garbage = ['', 'garbage', 'null', '[1,2]', '{"decision_id":"cut'];

  it('are skipped and counted, never sent: the events around them are delivered', async () => {
    const dir = spoolDir();
    writeSegment(dir, 1, ['a1'], `${garbage.join('\n')}\n${eventLine('a2')}\n`);
    writeSegment(dir, 2, ['b1']);
    const run = await startOn(dir);
    await waitFor(() => run.sink.ids.includes('b1'), 'the segment after the garbage');
    expect(run.sink.ids).toEqual(['a1', 'a2', 'b1']);
    expect(await count(run.metrics.decisionLogLost, 'why', 'corrupt')).toBe(garbage.length);
    await run.log.close();
  });

  it('never reach the HTTP sink: the service accepts every batch', async () => {
    const dir = spoolDir();
    writeSegment(dir, 1, ['a1'], `${garbage.join('\n')}\n${eventLine('a2')}\n`);
    const service = new LogService();
    const url = await service.start();
    const log = pipeline([new HttpSink({ url, timeoutMs: 5000, headers: {} })], dir);
    await log.start();
    await waitFor(() => service.received.length === 2, 'both events at the service');
    await log.close();
    await service.stop();
    expect(service.received.map((e) => e.decision_id)).toEqual(['a1', 'a2']);
  });

  it('never reach the file sink', async () => {
    const dir = spoolDir();
    const out = join(tempDir(), 'decisions.log');
    writeSegment(dir, 1, ['a1'], `${garbage.join('\n')}\n${eventLine('a2')}\n`);
    const log = pipeline([new FileSink({ path: out, maxBytes: 1 << 20, maxFiles: 1 })], dir);
    await log.start();
    await waitFor(() => existsSync(out) && readFileSync(out, 'utf8').includes('"a2"'), 'a2 in the file');
    await log.close();
    expect(readFileSync(out, 'utf8')).toBe(`${eventLine('a1')}\n${eventLine('a2')}\n`);
  });
});

describe('a backlog of many small segments', () => {
  it('drains in batches that span segments, as few as the batch size allows, and leaves no backlog', async () => {
    const dir = spoolDir();
    const ids = Array.from({ length: 500 }, (_, i) => `e${i}`);
    ids.forEach((id, i) => writeSegment(dir, i + 1, [id]));
    const spooled = ids.reduce((n, id) => n + Buffer.byteLength(eventLine(id)) + 1, 0);
    const batchBytes = 4096;
    const run = await startOn(dir, { shipper: { batchBytes, batchDelayMs: 0, minRetryDelayMs: 5, maxRetryDelayMs: 50 } });
    await waitFor(() => run.sink.ids.length === ids.length, 'all 500 events');
    expect(run.sink.ids).toEqual(ids);
    expect(run.sink.batches.length).toBeLessThanOrEqual(Math.ceil(spooled / batchBytes) + 1);
    expect(await count(run.metrics.decisionLogBacklog, 'sink', 'rec')).toBe(0);
    await run.log.close();
  });
});

describe('chain-head, the hash the first event of an emptied spool links to', () => {
  function prevHashOf(line: string | undefined): string {
    return (JSON.parse(line as string) as { prev_hash: string }).prev_hash;
  }

  it('starts a new chain, warned with ERR_DECISIONLOG_CHAIN, when it does not hold a sha256', async () => {
    const dir = spoolDir();
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'chain-head'), 'not-a-hash\n{evil}');
    const run = await startOn(dir);
    await stillLogs(run);
    expect(prevHashOf(run.sink.lines[0])).toBe(GENESIS_HASH);
    expect(run.logged.some((l) => (l.fields as { code?: string }).code === 'ERR_DECISIONLOG_CHAIN')).toBe(true);
    await run.log.close();
  });

  it('is what the first event links to when it holds a sha256', async () => {
    const dir = spoolDir();
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'chain-head'), 'ab'.repeat(32));
    const run = await startOn(dir);
    await stillLogs(run);
    expect(prevHashOf(run.sink.lines[0])).toBe('ab'.repeat(32));
    await run.log.close();
  });

  it('a new chain is reported by verify as one starting there', () => {
    const first = JSON.stringify({ decision_id: 'a', prev_hash: GENESIS_HASH });
    const second = JSON.stringify({ decision_id: 'b', prev_hash: lineHash(first) });
    const restarted = JSON.stringify({ decision_id: 'c', prev_hash: GENESIS_HASH });
    expect(verifyChain([first, second, restarted]).broken).toEqual([
      { line: 3, why: 'a new chain starts here (prev_hash is the genesis hash)' },
    ]);
  });
});

describe('the segment being written is set aside', () => {
  it('while no new segment can be started: events are counted as lost, not written where nothing reads them', async () => {
    const dir = spoolDir();
    const run = await startOn(dir);
    replaceByDirectory(segmentFile(dir, 2)); // the next segment cannot be created
    replaceByDirectory(segmentFile(dir, 1)); // the one being written is gone from its name
    const orphaned = recordWithSecrets(0); // written before the shipper finds segment 1 gone
    run.log.emit(orphaned.record, orphaned.decision);
    await waitFor(async () => (await count(run.metrics.decisionLogSpoolFaults, 'why', 'unreadable')) === 1, 'segment 1 set aside');
    const lost = recordWithSecrets(1);
    run.log.emit(lost.record, lost.decision);
    await waitFor(async () => (await count(run.metrics.decisionLogLost, 'why', 'spool_error')) === 1, 'the next event counted as lost');
    rmSync(segmentFile(dir, 2), { recursive: true });
    await stillLogs(run);
    expect(run.sink.ids).not.toContain(lost.decision.id);
    await run.log.close();
  });
});
