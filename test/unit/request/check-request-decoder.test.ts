import { describe, expect, it } from 'vitest';
import { decodeCheckRequest, type CheckRequestLimits } from '../../../src/request/check-request-decoder';
import { ExactNumber } from '../../../src/request/exact-number';
import { attrs, http, int, len, str, tag } from '../../helpers/proto-writer';

const LIMITS: CheckRequestLimits = { maxRequestBytes: 64 * 1024, maxHeaders: 4, maxInputDepth: 16, maxRequestFields: 500 };

describe('decodeCheckRequest: the peer shape (envoyauth/protomap.go protomap)', () => {
  it('int64 size and Timestamp are numbers; past 2^53 they stay exact', () => {
    const time = len(4, len(1, [...int(1, 1764000000n), ...int(2, 5000n)]));
    const d = decodeCheckRequest(attrs(time, http(int(9, 9007199254740993n))), LIMITS);
    expect(d.message).toEqual({
      attributes: { request: { time: { seconds: 1764000000, nanos: 5000 }, http: { size: new ExactNumber('9007199254740993') } } },
    });
    expect(d.exactNumbers).toBe(true);
  });

  it('size -1 (unknown, a 10-byte varint) is the number -1', () => {
    expect(decodeCheckRequest(attrs(http(int(9, -1n))), LIMITS).message).toEqual({ attributes: { request: { http: { size: -1 } } } });
  });

  it('zero scalars are absent; an empty message is {}; a oneof member set to zero is present', () => {
    const sock = len(1, len(1, [...int(1, 0n), ...str(2, ''), ...int(3, 0n)]));
    const d = decodeCheckRequest(attrs(len(1, sock), len(2, []), http(str(2, ''), int(9, 0n))), LIMITS);
    expect(d.message).toEqual({
      attributes: { source: { address: { socketAddress: { portValue: 0 } } }, destination: {}, request: { http: {} } },
    });
  });

  it('the last of two scalars wins; a second message occurrence merges', () => {
    const d = decodeCheckRequest(attrs(http(str(2, 'GET')), http(str(2, 'POST'), str(4, '/x'))), LIMITS);
    expect(d.message).toEqual({ attributes: { request: { http: { method: 'POST', path: '/x' } } } });
  });

  it('unknown fields of every wire type are skipped', () => {
    const unknown = [
      ...int(99, 5n),
      ...tag(98, 1),
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8,
      ...str(97, 'x'),
      ...tag(96, 5),
      1,
      2,
      3,
      4,
      ...tag(95, 3),
      ...int(1, 1n),
      ...tag(95, 4),
    ];
    expect(decodeCheckRequest(attrs(unknown, len(12, str(1, 'sni.example'))), LIMITS).message).toEqual({
      attributes: { tlsSession: { sni: 'sni.example' } },
    });
  });

  it('bytes are base64; enums are numbers; a __proto__ header is data', () => {
    const d = decodeCheckRequest(
      attrs(http(len(12, [0, 255]), len(3, [...str(1, '__proto__'), ...str(2, 'v')])), len(1, len(1, len(1, int(1, 1n))))),
      LIMITS,
    );
    const a = d.message?.attributes;
    expect(a?.request?.http?.rawBody).toBe('AP8=');
    expect(a?.request?.http?.headers?.['__proto__']).toBe('v');
    expect(a?.source?.address?.socketAddress?.protocol).toBe(1);
  });

  it('counts headers and header_map entries apart: each may reach maxHeaders (4) in one request', () => {
    const headers = Array.from({ length: 4 }, (_, i) => len(3, [...str(1, `h${i}`), ...str(2, 'v')]));
    const headerMap = len(13, Array.from({ length: 4 }, () => len(1, str(1, 'k'))).flat());
    const d = decodeCheckRequest(attrs(http(...headers, headerMap)), LIMITS);
    expect(d.refusal).toBeUndefined();
    expect(Object.keys(d.message?.attributes?.request?.http?.headers ?? {})).toEqual(['h0', 'h1', 'h2', 'h3']);
    expect(d.message?.attributes?.request?.http?.headerMap?.headers).toHaveLength(4);
  });

  const refusals: { name: string; bytes: Buffer; code: string }[] = [
    { name: 'truncated varint', bytes: Buffer.from([0x0a, 0x80]), code: 'ERR_REQUEST_MALFORMED' },
    { name: 'length past the end', bytes: Buffer.from([0x0a, 0x05, 0x01]), code: 'ERR_REQUEST_MALFORMED' },
    { name: 'varint of 11 bytes', bytes: Buffer.from([0x08, ...Array(10).fill(0xff), 0x01]), code: 'ERR_REQUEST_MALFORMED' },
    { name: '10th varint byte over 1', bytes: Buffer.from([0x08, ...Array(9).fill(0xff), 0x02]), code: 'ERR_REQUEST_MALFORMED' },
    { name: 'field number 0', bytes: Buffer.from([0x02, 0x00]), code: 'ERR_REQUEST_MALFORMED' },
    { name: 'wire type 6', bytes: Buffer.from([0x0e]), code: 'ERR_REQUEST_MALFORMED' },
    { name: 'wire type 7', bytes: Buffer.from([0x0f]), code: 'ERR_REQUEST_MALFORMED' },
    { name: 'stray end-group', bytes: Buffer.from([0x0c]), code: 'ERR_REQUEST_MALFORMED' },
    { name: 'group without an end', bytes: Buffer.from([...tag(9, 3), ...int(1, 1n)]), code: 'ERR_REQUEST_MALFORMED' },
    { name: 'known message field as a varint', bytes: Buffer.from(int(1, 1n)), code: 'ERR_REQUEST_MALFORMED' },
    {
      name: 'known string field as a fixed64',
      bytes: attrs(len(4, len(2, [...tag(2, 1), 1, 2, 3, 4, 5, 6, 7, 8]))),
      code: 'ERR_REQUEST_MALFORMED',
    },
    { name: 'invalid UTF-8 in a string', bytes: attrs(http(len(2, [0xc3, 0x28]))), code: 'ERR_REQUEST_MALFORMED' },
    { name: 'invalid UTF-8 in a map key', bytes: attrs(http(len(3, len(1, [0xff])))), code: 'ERR_REQUEST_MALFORMED' },
    {
      name: 'non-finite Struct number',
      bytes: attrs(
        len(
          11,
          len(1, [
            ...str(1, 'ns'),
            ...len(2, len(1, [...str(1, 'k'), ...len(2, [...tag(2, 1), ...Buffer.from(new Float64Array([NaN]).buffer)])])),
          ]),
        ),
      ),
      code: 'ERR_REQUEST_MALFORMED',
    },
    {
      name: 'too many headers',
      bytes: attrs(http(...Array.from({ length: 5 }, (_, i) => len(3, [...str(1, `h${i}`), ...str(2, 'v')])))),
      code: 'ERR_REQUEST_TOO_MANY_HEADERS',
    },
    {
      name: 'too many header_map entries',
      bytes: attrs(http(len(13, Array.from({ length: 5 }, () => len(1, str(1, 'k'))).flat()))),
      code: 'ERR_REQUEST_TOO_MANY_HEADERS',
    },
    { name: 'too many fields', bytes: attrs(...Array.from({ length: 600 }, () => int(99, 1n))), code: 'ERR_REQUEST_TOO_MANY_FIELDS' },
    { name: 'too large', bytes: Buffer.alloc(LIMITS.maxRequestBytes + 1), code: 'ERR_REQUEST_TOO_LARGE' },
    {
      name: 'deep Struct in metadata',
      bytes: attrs(len(11, len(1, [...str(1, 'ns'), ...len(2, deepStruct(20))]))),
      code: 'ERR_REQUEST_TOO_DEEP',
    },
    {
      name: 'deep unknown groups',
      bytes: Buffer.from([...Array(30).fill(tag(9, 3)).flat(), ...Array(30).fill(tag(9, 4)).flat()]),
      code: 'ERR_REQUEST_TOO_DEEP',
    },
  ];
  for (const c of refusals) {
    it(`refuses: ${c.name}`, () => {
      const d = decodeCheckRequest(c.bytes, LIMITS);
      expect(d.message).toBeNull();
      expect(d.refusal?.code).toBe(c.code);
    });
  }

  it('random bytes never throw: a message or a coded refusal', () => {
    let seed = 42;
    const rand = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    for (let i = 0; i < 2000; i++) {
      const bytes = Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 64) }, () => Math.floor(rand() * 256)));
      const d = decodeCheckRequest(bytes, LIMITS);
      expect(d.message === null ? d.refusal?.code.startsWith('ERR_REQUEST_') : d.refusal === undefined).toBe(true);
    }
  });
});

/** A Struct nested `n` deep: {"k": {"k": …}}. */
function deepStruct(n: number): number[] {
  let inner: number[] = [];
  for (let i = 0; i < n; i++) inner = len(1, [...str(1, 'k'), ...len(2, len(5, inner))]);
  return inner;
}
