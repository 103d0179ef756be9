import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningVerdict } from '../../src/main';
import {
  buildTestBundle,
  checkClient,
  headerValue,
  httpCheckRequest,
  startTestVerdict,
  type CheckClient,
  type CheckResponse,
} from '../helpers/verdict-harness';

// Every result field and every invalid result, over the real gRPC server with a real opa-built wasm bundle.
// Each case cites the opa-envoy-plugin (v1.19.1-envoy) rule it checks; the expected values come from
// reading those rules (envoyauth/response.go, internal/internal.go), not from running verdict. One policy
// answers each case's result, chosen by the `x-case` request header.

const RESPONSE_GO = 'envoyauth/response.go';
const INTERNAL_GO = 'internal/internal.go';

type Expect = (res: CheckResponse) => void;

interface ResultCase {
  name: string;
  /** The peer's rule: file and function. */
  rule: string;
  result: unknown;
  expect: Expect;
}

type Pair = [string | undefined, string | undefined];
const pairs = (list: { header?: { key?: string; value?: string } }[] | undefined): Pair[] =>
  (list ?? []).map((h): Pair => [h.header?.key, h.header?.value]).sort();
const allowed: Expect = (res) => {
  expect(res.status?.code ?? 0).toBe(0);
  expect(res.okResponse).toBeDefined();
};
const deniedWith =
  (status: number, body = ''): Expect =>
  (res) => {
    expect(res.status?.code).toBe(7);
    expect(res.deniedResponse?.status?.code).toBe(status);
    expect(res.deniedResponse?.body).toBe(body);
  };
/** The peer fails the RPC (UNKNOWN) on these; verdict fails closed with a coded deny (a kept difference). */
const refused: Expect = (res) => {
  expect(res.status?.code).toBe(7);
  expect(res.deniedResponse?.status?.code).toBe(500);
  expect(headerValue(res.deniedResponse?.headers, 'x-verdict-reason')).toBe('ERR_POLICY_RESULT');
  expect(res.okResponse).toBeUndefined();
};

const VALID: ResultCase[] = [
  { name: 'boolean true allows with an empty OkHttpResponse', rule: `${RESPONSE_GO} IsAllowed`, result: true, expect: allowed },
  {
    name: 'boolean false denies 403 with an empty body',
    rule: `${RESPONSE_GO} GetResponseHTTPStatus (bool → StatusForbidden)`,
    result: false,
    expect: deniedWith(403),
  },
  {
    name: 'allow: headers object of strings → OkHttpResponse.headers',
    rule: `${RESPONSE_GO} transformHeadersMapToHeadersBag`,
    result: { allowed: true, headers: { 'x-a': '1', 'x-b': '2' } },
    expect: (res) => {
      allowed(res);
      expect(pairs(res.okResponse?.headers)).toEqual([
        ['x-a', '1'],
        ['x-b', '2'],
      ]);
    },
  },
  {
    name: 'allow: a header with an array value gives one option per value',
    rule: `${RESPONSE_GO} transformHeadersMapToHeadersBag ([]any)`,
    result: { allowed: true, headers: { 'x-m': ['a', 'b'] } },
    expect: (res) => {
      allowed(res);
      expect(pairs(res.okResponse?.headers)).toEqual([
        ['x-m', 'a'],
        ['x-m', 'b'],
      ]);
    },
  },
  {
    name: 'allow: headers as an array of objects are concatenated',
    rule: `${RESPONSE_GO} transformAnyInputToHeadersBag ([]any)`,
    result: { allowed: true, headers: [{ 'x-a': '1' }, { 'x-a': '2', 'x-c': '3' }] },
    expect: (res) => {
      allowed(res);
      expect(pairs(res.okResponse?.headers)).toEqual([
        ['x-a', '1'],
        ['x-a', '2'],
        ['x-c', '3'],
      ]);
    },
  },
  {
    name: 'allow: an empty headers object sends no headers',
    rule: `${RESPONSE_GO} transformHeadersMapToHeadersBag`,
    result: { allowed: true, headers: {} },
    expect: (res) => {
      allowed(res);
      expect(res.okResponse?.headers ?? []).toEqual([]);
    },
  },
  {
    name: 'deny: headers → DeniedHttpResponse.headers',
    rule: `${INTERNAL_GO} check (responseHeaders on the deny branch)`,
    result: { allowed: false, headers: { 'www-authenticate': 'Bearer' } },
    expect: (res) => {
      deniedWith(403)(res);
      expect(headerValue(res.deniedResponse?.headers, 'www-authenticate')).toBe('Bearer');
    },
  },
  {
    name: 'allow: request_headers_to_remove → OkHttpResponse.headers_to_remove',
    rule: `${RESPONSE_GO} GetRequestHTTPHeadersToRemove`,
    result: { allowed: true, request_headers_to_remove: ['cookie', 'x-secret'] },
    expect: (res) => {
      allowed(res);
      expect(res.okResponse?.headersToRemove).toEqual(['cookie', 'x-secret']);
    },
  },
  {
    name: 'allow: response_headers_to_add object → OkHttpResponse.response_headers_to_add',
    rule: `${RESPONSE_GO} GetResponseHTTPHeadersToAdd`,
    result: { allowed: true, response_headers_to_add: { 'x-r': ['1', '2'] } },
    expect: (res) => {
      allowed(res);
      expect(pairs(res.okResponse?.responseHeadersToAdd)).toEqual([
        ['x-r', '1'],
        ['x-r', '2'],
      ]);
    },
  },
  {
    name: 'allow: response_headers_to_add as an array of objects',
    rule: `${RESPONSE_GO} GetResponseHTTPHeadersToAdd → transformAnyInputToHeadersBag`,
    result: { allowed: true, response_headers_to_add: [{ 'x-r': '1' }, { 'x-s': '2' }] },
    expect: (res) => {
      allowed(res);
      expect(pairs(res.okResponse?.responseHeadersToAdd)).toEqual([
        ['x-r', '1'],
        ['x-s', '2'],
      ]);
    },
  },
  {
    name: 'allow: query_parameters_to_set with a string value',
    rule: `${RESPONSE_GO} GetRequestQueryParametersToSet (string)`,
    result: { allowed: true, query_parameters_to_set: { tenant: 't1' } },
    expect: (res) => {
      allowed(res);
      expect(res.okResponse?.queryParametersToSet).toEqual([{ key: 'tenant', value: 't1' }]);
    },
  },
  {
    name: 'allow: query_parameters_to_set with an array value gives one parameter per value',
    rule: `${RESPONSE_GO} GetRequestQueryParametersToSet ([]any)`,
    result: { allowed: true, query_parameters_to_set: { t: ['1', '2'] } },
    expect: (res) => {
      allowed(res);
      expect(res.okResponse?.queryParametersToSet).toEqual([
        { key: 't', value: '1' },
        { key: 't', value: '2' },
      ]);
    },
  },
  {
    name: 'allow: query_parameters_to_remove → OkHttpResponse.query_parameters_to_remove',
    rule: `${RESPONSE_GO} GetRequestQueryParametersToRemove`,
    result: { allowed: true, query_parameters_to_remove: ['debug'] },
    expect: (res) => {
      allowed(res);
      expect(res.okResponse?.queryParametersToRemove).toEqual(['debug']);
    },
  },
  {
    name: 'deny: body → DeniedHttpResponse.body',
    rule: `${RESPONSE_GO} GetResponseBody`,
    result: { allowed: false, body: 'go away' },
    expect: deniedWith(403, 'go away'),
  },
  {
    name: 'deny: http_status 401',
    rule: `${RESPONSE_GO} GetResponseEnvoyHTTPStatus`,
    result: { allowed: false, http_status: 401 },
    expect: deniedWith(401),
  },
  {
    name: 'deny: http_status 302 (a redirect on deny) is in the enum',
    rule: `${RESPONSE_GO} GetResponseEnvoyHTTPStatus (StatusCode_name)`,
    result: { allowed: false, http_status: 302, headers: { location: 'https://login.example.org/' } },
    expect: (res) => {
      deniedWith(302)(res);
      expect(headerValue(res.deniedResponse?.headers, 'location')).toBe('https://login.example.org/');
    },
  },
  {
    name: 'deny: http_status 511, the highest enum value',
    rule: `${RESPONSE_GO} GetResponseEnvoyHTTPStatus (StatusCode_name)`,
    result: { allowed: false, http_status: 511 },
    expect: deniedWith(511),
  },
  {
    name: 'deny without http_status is 403',
    rule: `${RESPONSE_GO} GetResponseHTTPStatus (default StatusForbidden)`,
    result: { allowed: false },
    expect: deniedWith(403),
  },
  {
    name: 'allow: http_status is not read (even one outside the enum)',
    rule: `${INTERNAL_GO} check (GetResponseEnvoyHTTPStatus only on the deny branch)`,
    result: { allowed: true, http_status: 451 },
    expect: allowed,
  },
  {
    name: 'allow: body is not read (even a wrong-typed one)',
    rule: `${INTERNAL_GO} check (GetResponseBody only on the deny branch)`,
    result: { allowed: true, body: 5 },
    expect: allowed,
  },
  {
    name: 'deny: allow-only fields are not read (even wrong-typed ones)',
    rule: `${INTERNAL_GO} check (allow-only getters only on the OK branch)`,
    result: {
      allowed: false,
      http_status: 401,
      request_headers_to_remove: 5,
      response_headers_to_add: 'x',
      query_parameters_to_set: [],
      query_parameters_to_remove: {},
    },
    expect: deniedWith(401),
  },
  {
    name: 'allow: dynamic_metadata object → CheckResponse.dynamic_metadata',
    rule: `${RESPONSE_GO} GetDynamicMetadata`,
    result: { allowed: true, dynamic_metadata: { user: 'alice', level: 3, admin: false } },
    expect: (res) => {
      allowed(res);
      expect(res.dynamicMetadata?.fields?.user?.stringValue).toBe('alice');
      expect(res.dynamicMetadata?.fields?.level?.numberValue).toBe(3);
      expect(res.dynamicMetadata?.fields?.admin?.boolValue).toBe(false);
    },
  },
  {
    name: 'deny: dynamic_metadata is sent too',
    rule: `${INTERNAL_GO} check (GetDynamicMetadata before the branch)`,
    result: { allowed: false, dynamic_metadata: { why: 'no-role' } },
    expect: (res) => {
      deniedWith(403)(res);
      expect(res.dynamicMetadata?.fields?.why?.stringValue).toBe('no-role');
    },
  },
  {
    name: "decision_id is written over the policy's own decision_id",
    rule: `${INTERNAL_GO} check (DynamicMetadata.Fields["decision_id"])`,
    result: { allowed: true, dynamic_metadata: { decision_id: 'forged' } },
    expect: (res) => {
      allowed(res);
      expect(res.dynamicMetadata?.fields?.decision_id?.stringValue).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-/);
    },
  },
  {
    name: 'a boolean decision still carries decision_id',
    rule: `${INTERNAL_GO} check (DynamicMetadata created when nil)`,
    result: false,
    expect: (res) => expect(res.dynamicMetadata?.fields?.decision_id?.stringValue).toMatch(/^[0-9a-f-]{36}$/),
  },
];

const INVALID: ResultCase[] = [
  { name: 'a number', rule: `${RESPONSE_GO} invalidDecisionErr`, result: 1, expect: refused },
  { name: 'a string', rule: `${RESPONSE_GO} invalidDecisionErr`, result: 'yes', expect: refused },
  { name: 'an array', rule: `${RESPONSE_GO} invalidDecisionErr`, result: [true], expect: refused },
  { name: 'an object without allowed', rule: `${RESPONSE_GO} IsAllowed (missing "allowed")`, result: { body: 'x' }, expect: refused },
  { name: 'allowed a string', rule: `${RESPONSE_GO} IsAllowed (type assertion)`, result: { allowed: 'true' }, expect: refused },
  { name: 'allowed null', rule: `${RESPONSE_GO} IsAllowed (type assertion)`, result: { allowed: null }, expect: refused },
  {
    name: 'headers a string',
    rule: `${RESPONSE_GO} transformAnyInputToHeadersBag`,
    result: { allowed: true, headers: 'x-a: 1' },
    expect: refused,
  },
  {
    name: 'headers an array holding a string',
    rule: `${RESPONSE_GO} transformAnyInputToHeadersBag ([]any)`,
    result: { allowed: true, headers: [{ 'x-a': '1' }, 'x-b'] },
    expect: refused,
  },
  {
    name: 'a header value a number',
    rule: `${RESPONSE_GO} transformHeadersMapToHeadersBag`,
    result: { allowed: true, headers: { 'x-a': 1 } },
    expect: refused,
  },
  {
    name: 'a header value list holding a number',
    rule: `${RESPONSE_GO} transformHeadersMapToHeadersBag ([]any)`,
    result: { allowed: true, headers: { 'x-a': ['1', 2] } },
    expect: refused,
  },
  {
    name: 'deny headers of the wrong type (read on both branches)',
    rule: `${INTERNAL_GO} check (GetResponseEnvoyHeaderValueOptions before the branch)`,
    result: { allowed: false, headers: { 'x-a': { nested: true } } },
    expect: refused,
  },
  {
    name: 'request_headers_to_remove a string',
    rule: `${RESPONSE_GO} getStringSliceFromDecision`,
    result: { allowed: true, request_headers_to_remove: 'cookie' },
    expect: refused,
  },
  {
    name: 'request_headers_to_remove holding a number',
    rule: `${RESPONSE_GO} getStringSliceFromDecision ([]any)`,
    result: { allowed: true, request_headers_to_remove: ['cookie', 1] },
    expect: refused,
  },
  {
    name: 'query_parameters_to_remove an object',
    rule: `${RESPONSE_GO} GetRequestQueryParametersToRemove → getStringSliceFromDecision`,
    result: { allowed: true, query_parameters_to_remove: { debug: true } },
    expect: refused,
  },
  {
    name: 'response_headers_to_add a number',
    rule: `${RESPONSE_GO} GetResponseHTTPHeadersToAdd → transformAnyInputToHeadersBag`,
    result: { allowed: true, response_headers_to_add: 7 },
    expect: refused,
  },
  {
    name: 'response_headers_to_add with a boolean value',
    rule: `${RESPONSE_GO} transformHeadersMapToHeadersBag`,
    result: { allowed: true, response_headers_to_add: { 'x-r': true } },
    expect: refused,
  },
  {
    name: 'query_parameters_to_set an array',
    rule: `${RESPONSE_GO} GetRequestQueryParametersToSet (must be a map)`,
    result: { allowed: true, query_parameters_to_set: [{ t: '1' }] },
    expect: refused,
  },
  {
    name: 'query_parameters_to_set with a number value',
    rule: `${RESPONSE_GO} GetRequestQueryParametersToSet (string or array)`,
    result: { allowed: true, query_parameters_to_set: { t: 1 } },
    expect: refused,
  },
  {
    name: 'query_parameters_to_set with an array holding a number',
    rule: `${RESPONSE_GO} GetRequestQueryParametersToSet (array element)`,
    result: { allowed: true, query_parameters_to_set: { t: ['1', 2] } },
    expect: refused,
  },
  {
    name: 'dynamic_metadata an array',
    rule: `${RESPONSE_GO} GetDynamicMetadata`,
    result: { allowed: true, dynamic_metadata: [{ a: 1 }] },
    expect: refused,
  },
  {
    name: 'dynamic_metadata a string on a deny',
    rule: `${RESPONSE_GO} GetDynamicMetadata`,
    result: { allowed: false, dynamic_metadata: 'x' },
    expect: refused,
  },
  { name: 'body a number on a deny', rule: `${RESPONSE_GO} GetResponseBody`, result: { allowed: false, body: 5 }, expect: refused },
  { name: 'body an object on a deny', rule: `${RESPONSE_GO} GetResponseBody`, result: { allowed: false, body: { a: 1 } }, expect: refused },
  {
    name: 'http_status a string',
    rule: `${RESPONSE_GO} GetResponseHTTPStatus (json.Number)`,
    result: { allowed: false, http_status: '403' },
    expect: refused,
  },
  {
    name: 'http_status not an integer',
    rule: `${RESPONSE_GO} GetResponseHTTPStatus (json.Number.Int64)`,
    result: { allowed: false, http_status: 403.5 },
    expect: refused,
  },
  {
    name: 'http_status 451, an HTTP status Envoy lacks',
    rule: `${RESPONSE_GO} GetResponseEnvoyHTTPStatus (StatusCode_name)`,
    result: { allowed: false, http_status: 451 },
    expect: refused,
  },
  {
    name: 'http_status 418, an HTTP status Envoy lacks',
    rule: `${RESPONSE_GO} GetResponseEnvoyHTTPStatus (StatusCode_name)`,
    result: { allowed: false, http_status: 418 },
    expect: refused,
  },
  {
    name: 'http_status 425, an HTTP status Envoy lacks',
    rule: `${RESPONSE_GO} GetResponseEnvoyHTTPStatus (StatusCode_name)`,
    result: { allowed: false, http_status: 425 },
    expect: refused,
  },
  {
    name: 'http_status 999, no HTTP status',
    rule: `${RESPONSE_GO} GetResponseHTTPStatus (http.StatusText)`,
    result: { allowed: false, http_status: 999 },
    expect: refused,
  },
  {
    name: 'http_status 0 (Envoy\u2019s Empty, no HTTP status)',
    rule: `${RESPONSE_GO} GetResponseHTTPStatus (http.StatusText)`,
    result: { allowed: false, http_status: 0 },
    expect: refused,
  },
  {
    name: 'http_status -403',
    rule: `${RESPONSE_GO} GetResponseHTTPStatus (http.StatusText)`,
    result: { allowed: false, http_status: -403 },
    expect: refused,
  },
  // verdict's own stricter rules (kept differences, docs/opa-envoy-compat.md): the peer would send these.
  {
    name: 'http_status 100 on a deny (an interim status is no answer)',
    rule: `verdict: ${RESPONSE_GO} GetResponseEnvoyHTTPStatus accepts it; verdict refuses interim statuses`,
    result: { allowed: false, http_status: 100 },
    expect: refused,
  },
  {
    name: 'a header value holding CR LF (header line smuggling)',
    rule: 'verdict: envoy/config/core/v3/base.proto HeaderValue (HTTP_HEADER_VALUE); the peer passes it on',
    result: { allowed: true, headers: { 'x-a': 'ok\r\nx-admin: true' } },
    expect: refused,
  },
  {
    name: 'an empty header name',
    rule: 'verdict: envoy/config/core/v3/base.proto HeaderValue.key min_len 1; the peer passes it on',
    result: { allowed: false, headers: { '': 'v' } },
    expect: refused,
  },
];

const CASES = [...VALID, ...INVALID.map((c) => ({ ...c, name: `invalid: ${c.name}` }))];

/** One rule answering each case's result by the x-case header (JSON literals are Rego literals). */
function casePolicy(): string {
  const table = Object.fromEntries(CASES.map((c, i) => [`c${i}`, c.result]));
  return `package envoy.authz
import rego.v1
cases := ${JSON.stringify(table)}
allow := cases[input.attributes.request.http.headers["x-case"]]
`;
}

describe('result → CheckResponse conformance with opa-envoy-plugin', () => {
  let verdict: RunningVerdict;
  let client: CheckClient;
  beforeAll(async () => {
    const bundle = await buildTestBundle({ 'policy.rego': casePolicy() });
    verdict = await startTestVerdict([`policy.bundle=${bundle}`]);
    client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
  });
  afterAll(async () => {
    client.close();
    await verdict.stop();
  });

  CASES.forEach((c, i) => {
    it(`${c.name} [${c.rule}]`, async () => {
      const res = await client.check(httpCheckRequest({ path: '/r', headers: { 'x-case': `c${i}` } }));
      c.expect(res);
    });
  });

  it('keeps serving good results after every invalid one', async () => {
    const res = await client.check(httpCheckRequest({ path: '/r', headers: { 'x-case': 'c0' } }));
    allowed(res);
  });
});
