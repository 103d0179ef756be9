import { describe, expect, it } from 'vitest';
import type { HttpRequest } from '../../../src/request/check-request';
import { requestHeader } from '../../../src/request/request-header';
import { codeOf } from '../../helpers/error-code';

// The identity steps read their headers (authorization, x-forwarded-client-cert, a configured token
// header) through requestHeader. With encode_raw_headers Envoy sends header_map, one entry per occurrence:
// an attacker who repeats a header must not get the first occurrence verified while the upstream reads
// another (with `headers` Envoy merges them, "a,b", which no token or XFCC parser accepts).
const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

describe('requestHeader: header_map occurrences', () => {
  it.each<{ name: string; http: HttpRequest; want: string | undefined }>([
    {
      name: 'one raw entry: its UTF-8 bytes',
      http: { headerMap: { headers: [{ key: 'authorization', rawValue: b64('Bearer é') }] } },
      want: 'Bearer é',
    },
    {
      name: 'one entry among others repeated: its value',
      http: {
        headerMap: {
          headers: [
            { key: 'accept', value: 'a' },
            { key: 'authorization', value: 'Bearer x' },
            { key: 'accept', value: 'b' },
          ],
        },
      },
      want: 'Bearer x',
    },
    { name: 'absent', http: { headerMap: { headers: [{ key: 'accept', value: 'a' }] } }, want: undefined },
    { name: 'the merged headers map is read first', http: { headers: { authorization: 'Bearer a,Bearer b' } }, want: 'Bearer a,Bearer b' },
  ])('$name', ({ http, want }) => {
    expect(requestHeader(http, 'authorization')).toBe(want);
  });

  it.each<{ name: string; entries: { key: string; value?: string; rawValue?: string }[] }>([
    {
      name: 'two authorization values',
      entries: [
        { key: 'authorization', value: 'Bearer verified' },
        { key: 'authorization', value: 'Bearer forged' },
      ],
    },
    {
      name: 'two raw authorization values',
      entries: [
        { key: 'authorization', rawValue: b64('Bearer verified') },
        { key: 'authorization', rawValue: b64('Bearer forged') },
      ],
    },
    {
      name: 'the same value twice',
      entries: [
        { key: 'authorization', value: 'Bearer same' },
        { key: 'authorization', value: 'Bearer same' },
      ],
    },
  ])('header_map with $name is refused ERR_REQUEST_MALFORMED, not read as its first occurrence', ({ entries }) => {
    expect(codeOf(() => requestHeader({ headerMap: { headers: entries } }, 'authorization'))).toBe('ERR_REQUEST_MALFORMED');
  });
});
