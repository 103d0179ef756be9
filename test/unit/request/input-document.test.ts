import { describe, expect, it } from 'vitest';
import { VerdictError } from '../../../src/errors';
import { buildInputDocument } from '../../../src/request/input-document';
import { parseRequestPath } from '../../../src/request/parse-url';
import { timestampToRFC3339 } from '../../../src/request/protojson';
import type { CheckRequest } from '../../../src/request/check-request';

const LIMITS = { maxHeaders: 50, maxParsedBodyBytes: 1024 };

function req(http: Record<string, unknown>, extra: Record<string, unknown> = {}): CheckRequest {
  return { attributes: { request: { http }, ...extra } } as CheckRequest;
}

describe('parsed_path and parsed_query (opa-envoy-plugin semantics)', () => {
  const cases: { name: string; path: string; parsedPath: string[]; parsedQuery: Record<string, string[]> }[] = [
    { name: 'root', path: '/', parsedPath: [''], parsedQuery: {} },
    { name: 'empty', path: '', parsedPath: [''], parsedQuery: {} },
    { name: 'segments', path: '/api/v1/orders', parsedPath: ['api', 'v1', 'orders'], parsedQuery: {} },
    { name: 'trailing slash keeps an empty segment', path: '/api/', parsedPath: ['api', ''], parsedQuery: {} },
    { name: 'leading slashes trimmed', path: '//api', parsedPath: ['api'], parsedQuery: {} },
    { name: 'percent-decoded segments', path: '/a%20b/c%2Fd', parsedPath: ['a b', 'c', 'd'], parsedQuery: {} },
    { name: 'plus stays plus in paths', path: '/a+b', parsedPath: ['a+b'], parsedQuery: {} },
    { name: 'query repeated keys', path: '/x?a=1&b=2&a=3', parsedPath: ['x'], parsedQuery: { a: ['1', '3'], b: ['2'] } },
    { name: 'query plus is space', path: '/x?q=a+b%21', parsedPath: ['x'], parsedQuery: { q: ['a b!'] } },
    { name: 'query key without value', path: '/x?flag', parsedPath: ['x'], parsedQuery: { flag: [''] } },
    { name: 'query pair with semicolon skipped', path: '/x?a=1;b=2&c=3', parsedPath: ['x'], parsedQuery: { c: ['3'] } },
    { name: 'query bad escape skipped', path: '/x?a=%zz&b=1', parsedPath: ['x'], parsedQuery: { b: ['1'] } },
    { name: 'fragment dropped', path: '/x?a=1#frag', parsedPath: ['x'], parsedQuery: { a: ['1'] } },
    { name: 'utf-8 escapes', path: '/caf%C3%A9', parsedPath: ['café'], parsedQuery: {} },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const parsed = parseRequestPath(c.path);
      expect(parsed?.parsedPath).toEqual(c.parsedPath);
      expect({ ...parsed?.parsedQuery }).toEqual(c.parsedQuery);
    });
  }

  it('an invalid escape in the path is malformed', () => {
    expect(parseRequestPath('/a%zz')).toBeNull();
    expect(() => buildInputDocument(req({ path: '/a%zz' }), LIMITS)).toThrow(expect.objectContaining({ code: 'ERR_REQUEST_MALFORMED' }));
  });
});

describe('input document', () => {
  it('has the opa-envoy-plugin shape for a realistic GET', () => {
    const input = buildInputDocument(
      req(
        { method: 'GET', path: '/api/orders?limit=10', headers: { ':path': '/api/orders?limit=10', 'x-request-id': 'r1' }, size: '0' },
        { source: { principal: 'spiffe://example.org/ns/default/sa/frontend' } },
      ),
      LIMITS,
    );
    expect(input.version).toEqual({ ext_authz: 'v3', encoding: 'protojson' });
    expect(input.parsed_path).toEqual(['api', 'orders']);
    expect({ ...input.parsed_query }).toEqual({ limit: ['10'] });
    expect(input.parsed_body).toBeNull();
    expect(input.truncated_body).toBe(false);
    expect(input.source_principal).toBe('spiffe://example.org/ns/default/sa/frontend');
    expect(input.attributes).toMatchObject({ request: { http: { method: 'GET', size: '0' } } });
    expect(input.spiffe).toBeUndefined();
  });

  it('renders the request time as an RFC 3339 protojson timestamp', () => {
    const input = buildInputDocument(
      { attributes: { request: { time: { seconds: '1764000000', nanos: 5000 }, http: { path: '/' } } } } as CheckRequest,
      LIMITS,
    );
    expect((input.attributes.request as { time: string }).time).toBe('2025-11-24T16:00:00.000005Z');
    expect(timestampToRFC3339({ seconds: '0' })).toBe('1970-01-01T00:00:00Z');
    expect(timestampToRFC3339({ seconds: '1', nanos: 120000000 })).toBe('1970-01-01T00:00:01.120Z');
  });

  it('converts Struct metadata to plain JSON', () => {
    const input = buildInputDocument(
      {
        attributes: {
          request: { http: { path: '/' } },
          metadataContext: {
            filterMetadata: { 'envoy.filters.http.jwt_authn': { fields: { sub: { stringValue: 'u1' }, n: { numberValue: 2 } } } },
          },
        },
      } as CheckRequest,
      LIMITS,
    );
    expect(input.attributes.metadataContext).toEqual({ filterMetadata: { 'envoy.filters.http.jwt_authn': { sub: 'u1', n: 2 } } });
  });

  const bodies: { name: string; headers: Record<string, string>; body: string; parsed: unknown; truncated: boolean }[] = [
    { name: 'JSON body', headers: { 'content-type': 'application/json' }, body: '{"a":[1,2]}', parsed: { a: [1, 2] }, truncated: false },
    {
      name: 'JSON with charset',
      headers: { 'content-type': 'application/json; charset=utf-8' },
      body: '[true]',
      parsed: [true],
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
      name: 'body over the parse bound',
      headers: { 'content-type': 'application/json' },
      body: `"${'x'.repeat(2000)}"`,
      parsed: null,
      truncated: true,
    },
    { name: 'other content type is not parsed', headers: { 'content-type': 'text/plain' }, body: 'hello', parsed: null, truncated: false },
    { name: 'no content type', headers: {}, body: '{"a":1}', parsed: null, truncated: false },
    { name: 'empty JSON body', headers: { 'content-type': 'application/json' }, body: '', parsed: null, truncated: false },
  ];
  for (const c of bodies) {
    it(`parsed_body: ${c.name}`, () => {
      const input = buildInputDocument(req({ method: 'POST', path: '/', headers: c.headers, body: c.body }), LIMITS);
      expect(input.parsed_body).toEqual(c.parsed);
      expect(input.truncated_body).toBe(c.truncated);
    });
  }

  it('parses raw_body (bytes) in preference to body', () => {
    const rawBody = Buffer.from('{"raw":true}').toString('base64');
    const input = buildInputDocument(req({ path: '/', headers: { 'content-type': 'application/json' }, body: '{}', rawBody }), LIMITS);
    expect(input.parsed_body).toEqual({ raw: true });
  });

  const refusals: { name: string; request: CheckRequest; code: string }[] = [
    { name: 'no attributes', request: {}, code: 'ERR_REQUEST_MALFORMED' },
    {
      name: 'invalid JSON body',
      request: req({ path: '/', headers: { 'content-type': 'application/json' }, body: '{' }),
      code: 'ERR_REQUEST_BODY_PARSE',
    },
    {
      name: 'non-numeric content-length',
      request: req({ path: '/', headers: { 'content-type': 'application/json', 'content-length': 'ten' }, body: '{}' }),
      code: 'ERR_REQUEST_BODY_PARSE',
    },
    {
      name: 'too many headers',
      request: req({ path: '/', headers: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`h${i}`, 'v'])) }),
      code: 'ERR_REQUEST_TOO_MANY_HEADERS',
    },
  ];
  for (const c of refusals) {
    it(`refuses: ${c.name}`, () => {
      let caught: unknown;
      try {
        buildInputDocument(c.request, LIMITS);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(VerdictError);
      expect((caught as VerdictError).code).toBe(c.code);
    });
  }
});
