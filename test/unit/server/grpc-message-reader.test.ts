import { describe, expect, it } from 'vitest';
import { UnaryMessageReader, type BufferBudget } from '../../../src/server/grpc-message-reader';

const budget: BufferBudget = { reserve: () => true, release: () => undefined };

function framed(message: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

describe('UnaryMessageReader: the one request message, from however the DATA chunks cut it', () => {
  const message = Buffer.from('a CheckRequest, more or less');

  it('a message whole in one chunk is a view of that chunk (no copy), with exactly its bytes', () => {
    const chunk = framed(message);
    const reader = new UnaryMessageReader(1024, 4096, budget);
    expect(reader.push(chunk)).toBeNull();
    const read = reader.end();
    expect(read.kind).toBe('message');
    const bytes = (read as { bytes: Buffer }).bytes;
    expect(bytes.equals(message)).toBe(true);
    expect(bytes.buffer).toBe(chunk.buffer);
    expect(bytes.byteOffset).toBe(chunk.byteOffset + 5);
  });

  it('a message cut across chunks (in the prefix, in the body, a byte at a time) is copied whole', () => {
    const whole = framed(message);
    for (const cuts of [[3], [9], [5], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 30]]) {
      const reader = new UnaryMessageReader(1024, 4096, budget);
      let from = 0;
      for (const at of [...cuts, whole.length]) {
        expect(reader.push(whole.subarray(from, at))).toBeNull();
        from = at;
      }
      const read = reader.end() as { kind: string; bytes: Buffer };
      expect(read.kind).toBe('message');
      // A copy: the chunks overwritten afterwards leave the message as it was.
      whole.fill(0);
      expect(read.bytes.equals(message)).toBe(true);
      whole.set(framed(message));
    }
  });

  it('bytes after the message in the same chunk refuse the call; an empty message is a message', () => {
    const reader = new UnaryMessageReader(1024, 4096, budget);
    expect(reader.push(Buffer.concat([framed(message), Buffer.from([0])]))?.code).toBe('ERR_GRPC_TOO_MANY_MESSAGES');
    const empty = new UnaryMessageReader(1024, 4096, budget);
    expect(empty.push(framed(Buffer.alloc(0)))).toBeNull();
    expect(empty.end()).toMatchObject({ kind: 'message', bytes: Buffer.alloc(0) });
  });

  it('over maxBytes it is counted, not kept, even when whole in one chunk', () => {
    const reader = new UnaryMessageReader(8, 4096, budget);
    expect(reader.push(framed(message))).toBeNull();
    expect(reader.end()).toEqual({ kind: 'oversize', wireBytes: message.length });
  });
});
