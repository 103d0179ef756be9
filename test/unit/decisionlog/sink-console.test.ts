import { closeSync, mkdtempSync, readSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConsoleSink } from '../../../src/decisionlog/sink-console';
import { fifo } from '../../helpers/fifo';

// stdout as verdict has it under a shipper: a pipe (test/helpers/fifo.ts), written through a net.Socket as
// process.stdout is for a pipe.
const dir = mkdtempSync(join(tmpdir(), 'verdict-console-sink-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
function stdoutPipe(name: string): { readEnd: number; out: Socket } {
  const { readEnd, writeEnd } = fifo(dir, name);
  return { readEnd, out: new Socket({ fd: writeEnd, readable: false, writable: true }) };
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
