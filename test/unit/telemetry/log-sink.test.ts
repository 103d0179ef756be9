import { closeSync, mkdtempSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { LogSink } from '../../../src/telemetry/log-sink';
import { fifo } from '../../helpers/fifo';

// Real pipes (test/helpers/fifo.ts). Their ends stay open until the file's tests are done: a sink whose exit
// flush gave up still has its retry pending, and must not write into a reused descriptor.
const dir = mkdtempSync(join(tmpdir(), 'verdict-log-sink-'));
const open: number[] = [];
function pipe(): { readEnd: number; writeEnd: number } {
  const ends = fifo(dir, `fifo-${open.length}`);
  open.push(ends.readEnd, ends.writeEnd);
  return ends;
}
afterAll(() => {
  for (const fd of open) {
    try {
      closeSync(fd);
    } catch {
      // already closed by the test
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

const line = (i: number, size = 100): string => `{"n":${i},"pad":"${'x'.repeat(size)}"}\n`;

describe('LogSink', () => {
  it('stops at the first write error when the reader has gone (EPIPE): the exit flush returns, later lines are counted as dropped', () => {
    const { readEnd, writeEnd } = pipe();
    closeSync(readEnd);
    const sink = new LogSink(writeEnd);
    // The first line goes out asynchronously; the others wait behind it, so the exit flush has lines to write.
    for (let i = 0; i < 5; i++) sink.write(line(i));
    sink.flushAtExit();
    expect(sink.stopped).toBe('EPIPE');
    sink.write(line(5));
    sink.write(line(6));
    expect(sink.dropped).toBe(2);
  });

  it('a reader that does not read: lines past maxWaitingBytes are dropped and counted, and the exit flush gives up at its deadline', () => {
    const { writeEnd } = pipe();
    const sink = new LogSink(writeEnd, { maxWaitingBytes: 64 * 1024, exitFlushMs: 300 });
    // 4 MiB of lines, far more than the pipe and the 64 KiB that may wait: write() never blocks meanwhile.
    const total = 4096;
    for (let i = 0; i < total; i++) sink.write(line(i, 1000));
    expect(sink.dropped).toBeGreaterThanOrEqual(total - 65);
    expect(sink.dropped).toBeLessThan(total);
    const t0 = performance.now();
    sink.flushAtExit();
    // The pipe stays full: the flush retried until its deadline, then gave up instead of waiting for ever.
    expect(sink.stopped).toBe('EAGAIN');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(200);
    const before = sink.dropped;
    sink.write(line(total));
    expect(sink.dropped).toBe(before + 1);
  });

  it('writes every line, in order, to a reader that reads', async () => {
    const { readEnd, writeEnd } = pipe();
    const sink = new LogSink(writeEnd);
    const lines = Array.from({ length: 2000 }, (_, i) => line(i));
    const want = Buffer.from(lines.join(''));
    for (const l of lines) sink.write(l);
    const got: Buffer[] = [];
    let have = 0;
    const buf = Buffer.alloc(65536);
    // Read as the pipe fills (2000 lines are more than it holds), until every byte has arrived.
    await vi.waitFor(
      () => {
        for (;;) {
          let n = 0;
          try {
            n = readSync(readEnd, buf);
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
          }
          if (n <= 0) break;
          got.push(Buffer.from(buf.subarray(0, n)));
          have += n;
        }
        expect(have).toBe(want.length);
      },
      { timeout: 10_000, interval: 20 },
    );
    expect(Buffer.concat(got).equals(want)).toBe(true);
    expect({ stopped: sink.stopped, dropped: sink.dropped }).toEqual({ stopped: null, dropped: 0 });
  });
});
