import { describe, expect, it } from 'vitest';
import { buildInputDocument, type RequestLimits } from '../../../src/request/input-document';
import fc from 'fast-check';
import { checkRequestPath, parseRequestPath } from '../../../src/request/go-url';
import { ExactNumber } from '../../../src/request/exact-number';
import { inputToJSON } from '../../../src/request/input-json';
import type { CheckRequest } from '../../../src/request/check-request';
import { codeOf, codeOfAsync } from '../../helpers/error-code';

const LIMITS: RequestLimits = { maxHeaders: 50, maxParsedBodyBytes: 1024, maxInputDepth: 16, maxQueryParams: 20 };

function req(http: Record<string, unknown>, extra: Record<string, unknown> = {}): CheckRequest {
  return { attributes: { request: { http }, ...extra } } as CheckRequest;
}

// Expected values from envoyauth/request.go getParsedPathAndQuery (Go url.PathUnescape, url.ParseQuery).
describe('parsed_path and parsed_query (envoyauth/request.go getParsedPathAndQuery)', () => {
  const cases: { name: string; path: string; parsedPath: string[]; parsedQuery: Record<string, string[]> }[] = [
    { name: 'root', path: '/', parsedPath: [''], parsedQuery: {} },
    { name: 'empty', path: '', parsedPath: [''], parsedQuery: {} },
    { name: 'segments', path: '/api/v1/orders', parsedPath: ['api', 'v1', 'orders'], parsedQuery: {} },
    { name: 'trailing slash keeps an empty segment', path: '/api/', parsedPath: ['api', ''], parsedQuery: {} },
    { name: 'leading slashes trimmed', path: '//api', parsedPath: ['api'], parsedQuery: {} },
    { name: 'dot segments kept', path: '/a/../b/./c', parsedPath: ['a', '..', 'b', '.', 'c'], parsedQuery: {} },
    { name: 'percent-decoded before split', path: '/a%20b/c%2Fd', parsedPath: ['a b', 'c', 'd'], parsedQuery: {} },
    { name: 'plus stays plus in paths', path: '/a+b', parsedPath: ['a+b'], parsedQuery: {} },
    { name: 'query repeated keys', path: '/x?a=1&b=2&a=3', parsedPath: ['x'], parsedQuery: { a: ['1', '3'], b: ['2'] } },
    { name: 'query plus is space', path: '/x?q=a+b%21', parsedPath: ['x'], parsedQuery: { q: ['a b!'] } },
    { name: 'query key without value', path: '/x?flag&e=', parsedPath: ['x'], parsedQuery: { flag: [''], e: [''] } },
    { name: 'empty pairs skipped', path: '/x?&&a=1&', parsedPath: ['x'], parsedQuery: { a: ['1'] } },
    { name: 'only the first ? splits', path: '/x?a=b?c', parsedPath: ['x'], parsedQuery: { a: ['b?c'] } },
    { name: 'a # is not special (Envoy strips fragments)', path: '/x?a=1#f', parsedPath: ['x'], parsedQuery: { a: ['1#f'] } },
    { name: 'utf-8 escapes', path: '/caf%C3%A9', parsedPath: ['café'], parsedQuery: {} },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const parsed = parseRequestPath(c.path, 100);
      expect(parsed.parsedPath).toEqual(c.parsedPath);
      expect({ ...parsed.parsedQuery }).toEqual(c.parsedQuery);
    });
  }

  const errors: { name: string; path: string; code: string; message: string }[] = [
    { name: 'bad escape in the path', path: '/a%zz', code: 'ERR_REQUEST_PARSE', message: 'invalid URL escape "%zz"' },
    { name: 'cut escape at the end of the path', path: '/a%4', code: 'ERR_REQUEST_PARSE', message: 'invalid URL escape "%4"' },
    { name: 'semicolon separator', path: '/x?a=1;b=2', code: 'ERR_REQUEST_PARSE', message: 'invalid semicolon separator in query' },
    { name: 'bad escape in a query value', path: '/x?a=%zz&b=1', code: 'ERR_REQUEST_PARSE', message: 'invalid URL escape "%zz"' },
    {
      name: 'semicolon wins over an earlier bad escape',
      path: '/x?a=%g1&b;c',
      code: 'ERR_REQUEST_PARSE',
      message: 'invalid semicolon separator in query',
    },
    {
      name: 'too many parameters',
      path: `/x?${'a=1&'.repeat(25)}`,
      code: 'ERR_REQUEST_TOO_MANY_PARAMS',
      message: 'more than 20 query or form parameters',
    },
  ];
  for (const c of errors) {
    it(`refuses: ${c.name}`, () => {
      expect(codeOf(() => parseRequestPath(c.path, 20))).toBe(c.code);
      expect(() => parseRequestPath(c.path, 20)).toThrow(c.message);
    });
  }

  it('100,000 parameters are refused by one scan, before any decoding', () => {
    const path = `/x?${'k=v&'.repeat(100_000)}`;
    expect(codeOf(() => parseRequestPath(path, 1000))).toBe('ERR_REQUEST_TOO_MANY_PARAMS');
  });

  it("checkRequestPath (a cache hit's precheck) refuses exactly what parseRequestPath refuses, with the same error", () => {
    const outcome = (fn: () => unknown): string => {
      try {
        fn();
        return 'ok';
      } catch (err) {
        return `${(err as { code?: string }).code}: ${(err as Error).message}`;
      }
    };
    const path = fc.stringMatching(/^[/?&=;%+a-f0-9gz]{0,24}$/);
    let refused = 0;
    fc.assert(
      fc.property(path, fc.integer({ min: 1, max: 4 }), (p, max) => {
        const expected = outcome(() => parseRequestPath(p, max));
        if (expected !== 'ok') refused++;
        expect(outcome(() => checkRequestPath(p, max))).toBe(expected);
      }),
      { numRuns: 5000, seed: 15 },
    );
    // The generator reaches every refusal class, so the property is not passing on valid paths alone.
    expect(refused).toBeGreaterThan(500);
  });
});

describe('input document (envoyauth/request.go RequestToInput)', () => {
  it('adds version, parsed_*, truncated_body and source_principal to the decoded attributes', async () => {
    const attributes = {
      source: { principal: 'spiffe://example.org/ns/default/sa/frontend' },
      request: { http: { method: 'GET', path: '/api/orders?limit=10', size: 0 } },
    };
    const input = await buildInputDocument({ attributes } as CheckRequest, LIMITS);
    expect(input.version).toEqual({ ext_authz: 'v3', encoding: 'protojson' });
    expect(input.parsed_path).toEqual(['api', 'orders']);
    expect({ ...input.parsed_query }).toEqual({ limit: ['10'] });
    expect(input.parsed_body).toBeNull();
    expect(input.truncated_body).toBe(false);
    expect(input.source_principal).toBe('spiffe://example.org/ns/default/sa/frontend');
    expect(input.attributes).toBe(attributes);
    expect(input.spiffe).toBeUndefined();
  });

  it('an empty source principal is absent', async () => {
    const input = await buildInputDocument(req({ path: '/' }, { source: { principal: '' } }), LIMITS);
    expect('source_principal' in input).toBe(false);
  });

  const bodies: { name: string; headers: Record<string, string>; body?: string; rawBody?: string; parsed: unknown; truncated: boolean }[] =
    [
      { name: 'JSON body', headers: { 'content-type': 'application/json' }, body: '{"a":[1,2]}', parsed: { a: [1, 2] }, truncated: false },
      {
        name: 'JSON with charset',
        headers: { 'content-type': 'application/json; charset=utf-8' },
        body: '[true]',
        parsed: [true],
        truncated: false,
      },
      {
        name: 'JSON content type matched as a substring',
        headers: { 'content-type': 'application/json-patch+json' },
        body: '1',
        parsed: 1,
        truncated: false,
      },
      {
        name: 'form body',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'a=1&a=2&b=x+y',
        parsed: { a: ['1', '2'], b: ['x y'] },
        truncated: false,
      },
      {
        name: 'partial body (content-length larger)',
        headers: { 'content-type': 'application/json', 'content-length': '100' },
        body: '{"a":',
        parsed: null,
        truncated: true,
      },
      {
        name: 'content-length -1 is unknown, not truncated',
        headers: { 'content-type': 'application/json', 'content-length': '-1' },
        body: '{}',
        parsed: {},
        truncated: false,
      },
      {
        name: 'x-envoy-auth-partial-body: true',
        headers: { 'content-type': 'application/json', 'x-envoy-auth-partial-body': 'true' },
        body: '{"a":',
        parsed: null,
        truncated: true,
      },
      {
        name: 'x-envoy-auth-partial-body: false is ignored',
        headers: { 'content-type': 'application/json', 'x-envoy-auth-partial-body': 'false' },
        body: '{}',
        parsed: {},
        truncated: false,
      },
      {
        name: 'body over the parse bound',
        headers: { 'content-type': 'application/json' },
        body: `"${'x'.repeat(2000)}"`,
        parsed: null,
        truncated: true,
      },
      {
        name: 'other content type is not parsed',
        headers: { 'content-type': 'text/plain' },
        body: 'hello',
        parsed: null,
        truncated: false,
      },
      {
        name: 'gRPC body without a descriptor set',
        headers: { 'content-type': 'application/grpc' },
        rawBody: 'AAAAAAA=',
        parsed: null,
        truncated: false,
      },
      { name: 'no content type', headers: {}, body: '{"a":1}', parsed: null, truncated: false },
      { name: 'empty JSON body', headers: { 'content-type': 'application/json' }, body: '', parsed: null, truncated: false },
      {
        name: 'body wins over raw_body',
        headers: { 'content-type': 'application/json' },
        body: '{"b":1}',
        rawBody: Buffer.from('{"raw":1}').toString('base64'),
        parsed: { b: 1 },
        truncated: false,
      },
      {
        name: 'raw_body when body is empty',
        headers: { 'content-type': 'application/json' },
        rawBody: Buffer.from('{"raw":1}').toString('base64'),
        parsed: { raw: 1 },
        truncated: false,
      },
    ];
  for (const c of bodies) {
    it(`parsed_body: ${c.name}`, async () => {
      const http = {
        method: 'POST',
        path: '/',
        headers: c.headers,
        ...(c.body !== undefined ? { body: c.body } : {}),
        ...(c.rawBody ? { rawBody: c.rawBody } : {}),
      };
      const input = await buildInputDocument(req(http), LIMITS);
      expect(input.parsed_body).toEqual(c.parsed);
      expect(input.truncated_body).toBe(c.truncated);
    });
  }

  it('JSON numbers reach the policy as written (Go json.Number)', async () => {
    const body = '{"big":12345678901234567890,"p53":9007199254740993,"f":1.0,"z":-0,"e":1.5e300,"n":42}';
    const input = await buildInputDocument(req({ path: '/', headers: { 'content-type': 'application/json' }, body }), LIMITS);
    expect((input.parsed_body as Record<string, unknown>).big).toEqual(new ExactNumber('12345678901234567890'));
    expect((input.parsed_body as Record<string, unknown>).n).toBe(42);
    expect(inputToJSON(input)).toContain(
      '"parsed_body":{"big":12345678901234567890,"p53":9007199254740993,"f":1.0,"z":-0,"e":1.5e300,"n":42}',
    );
  });

  it('multipart/form-data: named parts, JSON parts decoded, unnamed parts skipped', async () => {
    const b = 'XyZ';
    const body = [
      `--${b}\r\nContent-Disposition: form-data; name="a"\r\n\r\none\r\n`,
      `--${b}\r\nContent-Disposition: form-data; name="a"\r\n\r\ntwo\r\n`,
      `--${b}\r\nContent-Disposition: form-data; name="j"\r\nContent-Type: application/json\r\n\r\n{"n":1.0}\r\n`,
      `--${b}\r\nContent-Disposition: form-data; name="f"; filename="x.txt"\r\nContent-Type: text/plain\r\n\r\nfile text\r\n`,
      `--${b}\r\nContent-Disposition: form-data\r\n\r\nno name\r\n`,
      `--${b}--\r\n`,
    ].join('');
    const input = await buildInputDocument(
      req({ path: '/', headers: { 'content-type': `multipart/form-data; boundary=${b}` }, body }),
      LIMITS,
    );
    expect(input.parsed_body).toEqual({ a: ['one', 'two'], j: [{ n: new ExactNumber('1.0') }], f: ['file text'] });
  });

  it('multipart without a boundary parameter is not parsed', async () => {
    const input = await buildInputDocument(req({ path: '/', headers: { 'content-type': 'multipart/form-data' }, body: 'x' }), LIMITS);
    expect(input.parsed_body).toBeNull();
  });

  const refusals: { name: string; request: CheckRequest; code: string }[] = [
    { name: 'no attributes', request: {}, code: 'ERR_REQUEST_MALFORMED' },
    {
      name: 'invalid JSON body',
      request: req({ path: '/', headers: { 'content-type': 'application/json' }, body: '{' }),
      code: 'ERR_REQUEST_BODY_PARSE',
    },
    {
      name: 'JSON with trailing data',
      request: req({ path: '/', headers: { 'content-type': 'application/json' }, body: '{} x' }),
      code: 'ERR_REQUEST_BODY_PARSE',
    },
    {
      name: 'non-numeric content-length',
      request: req({ path: '/', headers: { 'content-type': 'application/json', 'content-length': 'ten' }, body: '{}' }),
      code: 'ERR_REQUEST_BODY_PARSE',
    },
    {
      name: 'form body with a semicolon',
      request: req({ path: '/', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=1;b=2' }),
      code: 'ERR_REQUEST_BODY_PARSE',
    },
    {
      name: 'form body with a bad escape',
      request: req({ path: '/', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=%' }),
      code: 'ERR_REQUEST_BODY_PARSE',
    },
    {
      name: 'multipart JSON part that is not JSON',
      request: req({
        path: '/',
        headers: { 'content-type': 'multipart/form-data; boundary=b' },
        body: '--b\r\nContent-Disposition: form-data; name="j"\r\nContent-Type: application/json\r\n\r\n{nope\r\n--b--\r\n',
      }),
      code: 'ERR_REQUEST_BODY_PARSE',
    },
    {
      name: 'multipart cut before its closing boundary',
      request: req({
        path: '/',
        headers: { 'content-type': 'multipart/form-data; boundary=b' },
        body: '--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nx',
      }),
      code: 'ERR_REQUEST_BODY_PARSE',
    },
    {
      name: 'JSON body nested past the depth bound',
      request: req({ path: '/', headers: { 'content-type': 'application/json' }, body: '['.repeat(40) + ']'.repeat(40) }),
      code: 'ERR_REQUEST_TOO_DEEP',
    },
    {
      name: 'too many form pairs',
      request: req({ path: '/', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=1&'.repeat(30) }),
      code: 'ERR_REQUEST_TOO_MANY_PARAMS',
    },
    {
      name: 'too many headers',
      request: req({ path: '/', headers: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`h${i}`, 'v'])) }),
      code: 'ERR_REQUEST_TOO_MANY_HEADERS',
    },
    { name: 'bad path escape', request: req({ path: '/a%zz' }), code: 'ERR_REQUEST_PARSE' },
  ];
  for (const c of refusals) {
    it(`refuses: ${c.name}`, async () => {
      expect(await codeOfAsync(() => buildInputDocument(c.request, LIMITS))).toBe(c.code);
    });
  }
});
