import { describe, expect, it } from 'vitest';
import { percentEncodeGrpcMessage } from '../../../src/server/grpc-status';
import { parseGrpcTimeoutMs } from '../../../src/server/grpc-timeout';

describe('percentEncodeGrpcMessage (PROTOCOL-HTTP2.md Status-Message)', () => {
  it.each([
    { name: 'a plain code', text: 'ERR_SVID_UNTRUSTED', wire: 'ERR_SVID_UNTRUSTED' },
    { name: 'space and printable ASCII', text: 'a b~!', wire: 'a b~!' },
    { name: 'percent itself', text: '100%', wire: '100%25' },
    { name: 'CR LF (would split the header block)', text: 'a\r\nb', wire: 'a%0D%0Ab' },
    { name: 'non-ASCII as UTF-8 bytes', text: 'ünï ✓', wire: '%C3%BCn%C3%AF %E2%9C%93' },
    { name: 'DEL', text: '\x7f', wire: '%7F' },
  ])('$name', ({ text, wire }) => {
    expect(percentEncodeGrpcMessage(text)).toBe(wire);
    expect(decodeURIComponent(wire)).toBe(text);
  });
});

describe('parseGrpcTimeoutMs (PROTOCOL-HTTP2.md Timeout)', () => {
  it.each([
    { name: 'absent: no deadline', header: undefined, ms: undefined },
    { name: 'hours', header: '1H', ms: 3_600_000 },
    { name: 'minutes', header: '2M', ms: 120_000 },
    { name: 'seconds', header: '5S', ms: 5000 },
    { name: 'milliseconds', header: '250m', ms: 250 },
    { name: 'microseconds round up', header: '1500u', ms: 2 },
    { name: 'nanoseconds round up to 1 ms', header: '1n', ms: 1 },
    { name: 'eight digits', header: '99999999m', ms: 99_999_999 },
    { name: 'nine digits', header: '123456789m', ms: Number.NaN },
    { name: 'no unit', header: '100', ms: Number.NaN },
    { name: 'unknown unit', header: '100s', ms: Number.NaN },
    { name: 'negative', header: '-1S', ms: Number.NaN },
    { name: 'repeated header', header: ['1S', '2S'], ms: Number.NaN },
  ])('$name', ({ header, ms }) => {
    expect(parseGrpcTimeoutMs(header)).toBe(ms);
  });
});
