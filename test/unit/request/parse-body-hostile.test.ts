import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseBody } from '../../../src/request/parse-body';
import { codeOfAsync } from '../../helpers/error-code';

// content-length is read as Go's strconv.ParseInt(v, 10, 64) reads it (opa-envoy-plugin's
// checkIfHTTPBodyTruncated). A CheckRequest may carry a header value of up to limits.maxRequestBytes, and
// converting a long digit string to a number costs time quadratic in its length: no more than an int64's
// 19 digits (plus a sign) are ever converted. The work is counted through BigInt's arguments, not timed.
const LIMITS = { maxParsedBodyBytes: 64 * 1024, maxInputDepth: 64, maxQueryParams: 1000 };
const body = '{"a":1}';

function countBigIntInput(): { longest: () => number } {
  const real = globalThis.BigInt;
  let longest = 0;
  vi.spyOn(globalThis, 'BigInt').mockImplementation(((v: string | number | bigint | boolean) => {
    if (typeof v === 'string') longest = Math.max(longest, v.length);
    return real(v);
  }) as typeof BigInt);
  return { longest: () => longest };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('parseBody: content-length digits', () => {
  it.each([
    { name: 'a million 9s', cl: '9'.repeat(1_000_000) },
    { name: 'a sign and a million 9s', cl: `-${'9'.repeat(1_000_000)}` },
    { name: '20 digits', cl: '10000000000000000000' },
  ])('$name: ERR_REQUEST_BODY_PARSE out of range, and no more than 20 characters reach BigInt', async ({ cl }) => {
    const work = countBigIntInput();
    const err = await parseBody({ 'content-type': 'application/json', 'content-length': cl }, body, undefined, LIMITS).catch(
      (e: unknown) => e as { code: string; message: string },
    );
    expect((err as { code: string }).code).toBe('ERR_REQUEST_BODY_PARSE');
    expect((err as { message: string }).message).toMatch(/: value out of range$/);
    expect(work.longest()).toBeLessThanOrEqual(20);
  });

  it('a million leading zeros before 7 read as 7, as ParseInt reads them: the 7-byte body is parsed, not truncated', async () => {
    const work = countBigIntInput();
    const parsed = await parseBody(
      { 'content-type': 'application/json', 'content-length': `${'0'.repeat(1_000_000)}7` },
      body,
      undefined,
      LIMITS,
    );
    expect(parsed).toEqual({ parsedBody: { a: 1 }, truncatedBody: false, exactNumbers: false });
    expect(work.longest()).toBeLessThanOrEqual(20);
  });

  it.each([
    { name: 'int64 max', cl: '9223372036854775807', want: 'truncated' },
    { name: 'int64 max + 1', cl: '9223372036854775808', want: 'ERR_REQUEST_BODY_PARSE' },
    { name: 'int64 min', cl: '-9223372036854775808', want: 'parsed' },
    { name: 'int64 min - 1', cl: '-9223372036854775809', want: 'ERR_REQUEST_BODY_PARSE' },
    { name: '-1 (unknown)', cl: '-1', want: 'parsed' },
    { name: '-0001 (unknown, zeros dropped)', cl: '-0001', want: 'parsed' },
    { name: '+7', cl: '+7', want: 'parsed' },
    { name: '8 (one byte past the body)', cl: '8', want: 'truncated' },
  ])('$name: $want', async ({ cl, want }) => {
    const headers = { 'content-type': 'application/json', 'content-length': cl };
    if (want.startsWith('ERR_')) {
      expect(await codeOfAsync(parseBody(headers, body, undefined, LIMITS))).toBe(want);
      return;
    }
    const parsed = await parseBody(headers, body, undefined, LIMITS);
    expect(parsed.truncatedBody).toBe(want === 'truncated');
  });
});
