import { describe, expect, it } from 'vitest';
import { ProtoWireReader } from '../../../src/request/proto-wire-reader';
import { verdictErrorOf } from '../../helpers/error-code';

/** A length-delimited payload as mapKey reads it (its tag already read): length varint, then the bytes. */
function keyField(bytes: Buffer): ProtoWireReader {
  const buf = Buffer.concat([Buffer.from([bytes.length]), bytes, Buffer.from([0x7f])]);
  return new ProtoWireReader(buf, 0, buf.length);
}

function readKey(bytes: Buffer): { key: string; pos: number } {
  const r = keyField(bytes);
  const key = r.mapKey('headers', ' key');
  return { key, pos: r.pos };
}

describe('ProtoWireReader.mapKey (map keys met before come back as the same string)', () => {
  it('a repeated key reads as the same text, with the cursor after it, every time', () => {
    const bytes = Buffer.from('x-request-id');
    for (let i = 0; i < 3; i++) expect(readKey(bytes)).toEqual({ key: 'x-request-id', pos: 1 + bytes.length });
  });

  it('keys that land in one slot (same length, first, middle and last byte) are told apart by their bytes', () => {
    const names = ['ab-cd-ef', 'ax-cd-yf', 'ab-cd-ef', 'ax-cd-yf'];
    for (const name of names) expect(readKey(Buffer.from(name)).key).toBe(name);
  });

  it('non-ASCII, empty and long keys read as string() reads them; invalid UTF-8 is refused the same way', () => {
    const long = 'k'.repeat(100);
    for (const text of ['grüße', '', long, 'ключ']) {
      for (let i = 0; i < 2; i++) expect(readKey(Buffer.from(text, 'utf8')).key).toBe(text);
    }
    const bad = Buffer.from([0x61, 0xc3, 0x28]);
    const viaKey = verdictErrorOf(() => keyField(bad).mapKey('headers', ' key'));
    const viaString = verdictErrorOf(() => keyField(bad).string('headers', ' key'));
    expect(viaKey.code).toBe('ERR_REQUEST_MALFORMED');
    expect(viaKey.message).toBe(viaString.message);
  });

  it('a truncated key is refused before the table is read', () => {
    const buf = Buffer.from([10, 0x61, 0x62]);
    expect(verdictErrorOf(() => new ProtoWireReader(buf, 0, buf.length).mapKey('headers', ' key')).code).toBe('ERR_REQUEST_MALFORMED');
  });
});
