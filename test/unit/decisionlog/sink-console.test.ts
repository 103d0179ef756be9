import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConsoleSink } from '../../../src/decisionlog/sink-console';

// stdout as verdict has it under a shipper: a pipe. Here a FIFO whose read end the test holds (and closes,
// for a reader that has gone), written through a net.Socket as process.stdout is for a pipe.
const dir = mkdtempSync(join(tmpdir(), 'verdict-console-sink-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
function stdoutPipe(name: string): { readEnd: number; out: Socket } {
  const path = join(dir, name);
  execFileSync('mkfifo', [path]);
  const readEnd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const out = new Socket({ fd: openSync(path, constants.O_WRONLY | constants.O_NONBLOCK), readable: false, writable: true });
  return { readEnd, out };
}

describe('ConsoleSink', () => {
  it('writes the lines, one per event, to a reader that reads', async () => {
    const { readEnd, out } = stdoutPipe('reads');
    await new ConsoleSink(out).send(['{"a":1}', '{"b":2}']);
    const buf = Buffer.alloc(64);
    expect(buf.toString('utf8', 0, readSync(readEnd, buf))).toBe('{"a":1}\n{"b":2}\n');
    closeSync(readEnd);
    out.destroy();
  });

  it("fails this delivery and every later one when stdout's reader has gone (EPIPE), without an uncaught exception", async () => {
    const { readEnd, out } = stdoutPipe('gone');
    closeSync(readEnd);
    const sink = new ConsoleSink(out);
    await expect(sink.send(['{"a":1}'])).rejects.toMatchObject({ code: 'EPIPE' });
    // The stream is destroyed after its error: the next send fails at once with the same error.
    await expect(sink.send(['{"b":2}'])).rejects.toMatchObject({ code: 'EPIPE' });
  });
});
