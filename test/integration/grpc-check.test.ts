import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningVerdict } from '../../src/main';
import {
  buildTestBundle,
  checkClient,
  headerValue,
  httpCheckRequest,
  startTestVerdict,
  type CheckClient,
} from '../helpers/verdict-harness';
import { healthCheck } from '../helpers/grpc-health';

// Real server on port 0, real grpc-js client, real opa-built wasm bundles.

const OBJECT_POLICY = `package envoy.authz
import rego.v1

default allow := {"allowed": false, "http_status": 401, "body": "who are you?", "headers": {"www-authenticate": "Bearer"}}

allow := {
  "allowed": true,
  "headers": {"x-user": "alice", "x-multi": ["a", "b"]},
  "request_headers_to_remove": ["x-secret"],
  "response_headers_to_add": {"x-decided-by": "verdict"},
  "query_parameters_to_set": {"tenant": "t1"},
  "query_parameters_to_remove": ["debug"],
  "dynamic_metadata": {"user": "alice", "level": 3},
} if input.attributes.request.http.headers["x-token"] == "good"

allow := {"allowed": false, "http_status": 429, "body": "slow down"} if input.attributes.request.http.headers["x-token"] == "spam"
`;

const FAILING_POLICY = `package envoy.authz
import rego.v1
# Conflicting complete rule values make evaluation fail at run time (an engine error).
allow := true if input.attributes.request.http.method == "GET"
allow := false if input.attributes.request.http.path == "/conflict"
`;

const BAD_SHAPE_POLICY = `package envoy.authz
import rego.v1
allow := {"allowed": "yes"}
`;

describe('gRPC Check against the default policy', () => {
  let verdict: RunningVerdict;
  let client: CheckClient;
  beforeAll(async () => {
    verdict = await startTestVerdict();
    client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
  });
  afterAll(async () => {
    client.close();
    await verdict.stop();
  });

  it('allows a health probe and names the rule in an upstream header', async () => {
    const res = await client.check(httpCheckRequest({ method: 'GET', path: '/healthz' }));
    expect(res.status?.code ?? 0).toBe(0);
    expect(headerValue(res.okResponse?.headers, 'x-verdict-rule')).toBe('health-probes');
    expect(res.dynamicMetadata?.fields?.decision_id?.stringValue).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('denies an unmatched request with 403, the policy body and the reason header', async () => {
    const res = await client.check(httpCheckRequest({ method: 'DELETE', path: '/api/orders/1' }));
    expect(res.status?.code).toBe(7);
    expect(res.deniedResponse?.status?.code).toBe(403);
    expect(res.deniedResponse?.body).toBe('access denied by policy\n');
    expect(headerValue(res.deniedResponse?.headers, 'x-verdict-reason')).toBe('DENIED_BY_POLICY');
    expect(headerValue(res.deniedResponse?.headers, 'x-verdict-policy')).toBe('default');
  });

  it('denies a request with no attributes as malformed (400)', async () => {
    const res = await client.check({});
    expect(res.deniedResponse?.status?.code).toBe(400);
    expect(headerValue(res.deniedResponse?.headers, 'x-verdict-reason')).toBe('ERR_REQUEST_MALFORMED');
  });

  it('denies a request with an invalid JSON body as a body parse error', async () => {
    const res = await client.check(
      httpCheckRequest({ method: 'GET', path: '/healthz', headers: { 'content-type': 'application/json' }, body: '{not json' }),
    );
    expect(headerValue(res.deniedResponse?.headers, 'x-verdict-reason')).toBe('ERR_REQUEST_BODY_PARSE');
  });

  it('reports SERVING on grpc.health.v1 once a bundle is loaded', async () => {
    const status = await healthCheck(verdict.grpcPort, 'envoy.service.auth.v3.Authorization');
    expect(status).toBe('SERVING');
  });

  it('counts decisions by result and reason on /metrics', async () => {
    const text = await (await fetch(`http://127.0.0.1:${verdict.httpPort}/metrics`)).text();
    expect(text).toMatch(/verdict_decisions_total\{result="allow",engine="opa",reason="ALLOWED"\} [1-9]/);
    expect(text).toMatch(/verdict_decisions_total\{result="deny",engine="opa",reason="DENIED_BY_POLICY"\} [1-9]/);
    expect((await fetch(`http://127.0.0.1:${verdict.httpPort}/readyz`)).status).toBe(200);
  });

  it('exposes every metric family operators need on /metrics', async () => {
    const text = await (await fetch(`http://127.0.0.1:${verdict.httpPort}/metrics`)).text();
    const families = [
      'verdict_check_duration_seconds_bucket{le="0.001",protocol="grpc"}',
      'verdict_bundle_info{name="default"',
      'verdict_bundle_loads_total{outcome="activated",reason="OK"} 1',
      'verdict_cache_requests_total',
      'verdict_decisionlog_events_total',
      'verdict_fastpath_enabled{reason=',
      'verdict_nodejs_eventloop_lag_max_seconds',
      'verdict_process_resident_memory_bytes',
    ];
    for (const f of families) expect(text, f).toContain(f);
  });
});

describe('gRPC Check with limits', () => {
  let verdict: RunningVerdict;
  let client: CheckClient;
  beforeAll(async () => {
    verdict = await startTestVerdict(['limits.maxRequestBytes=4096', 'limits.maxHeaders=10']);
    client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
  });
  afterAll(async () => {
    client.close();
    await verdict.stop();
  });

  it('denies an oversize CheckRequest with ERR_REQUEST_TOO_LARGE and keeps serving', async () => {
    const big = httpCheckRequest({ method: 'POST', path: '/healthz', body: 'x'.repeat(64 * 1024) });
    const res = await client.check(big);
    expect(res.deniedResponse?.status?.code).toBe(400);
    expect(headerValue(res.deniedResponse?.headers, 'x-verdict-reason')).toBe('ERR_REQUEST_TOO_LARGE');
    const after = await client.check(httpCheckRequest({ method: 'GET', path: '/healthz' }));
    expect(after.okResponse).toBeDefined();
  });

  it('denies a request with too many headers', async () => {
    const headers: Record<string, string> = {};
    for (let i = 0; i < 20; i++) headers[`x-h${i}`] = 'v';
    const res = await client.check(httpCheckRequest({ path: '/healthz', headers }));
    expect(headerValue(res.deniedResponse?.headers, 'x-verdict-reason')).toBe('ERR_REQUEST_TOO_MANY_HEADERS');
  });

  it('denies bytes that are not a CheckRequest as malformed', async () => {
    const res = await client.checkRaw(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01]));
    expect(headerValue(res.deniedResponse?.headers, 'x-verdict-reason')).toBe('ERR_REQUEST_MALFORMED');
  });
});

describe('gRPC Check with object results and engine failures', () => {
  const started: RunningVerdict[] = [];
  const clients: CheckClient[] = [];
  afterAll(async () => {
    for (const c of clients) c.close();
    for (const v of started) await v.stop();
  });
  async function serve(policy: string): Promise<CheckClient> {
    const bundle = await buildTestBundle({ 'policy.rego': policy });
    const v = await startTestVerdict([`policy.bundle=${bundle}`]);
    started.push(v);
    const c = checkClient(`127.0.0.1:${v.grpcPort}`);
    clients.push(c);
    return c;
  }

  it('maps every allow field of the object result to OkHttpResponse', async () => {
    const client = await serve(OBJECT_POLICY);
    const res = await client.check(httpCheckRequest({ path: '/x?debug=1', headers: { 'x-token': 'good' } }));
    const ok = res.okResponse;
    // First value of a key replaces the client's header (append false); later ones append.
    const headers = ok?.headers?.map((h) => [h.header?.key, h.header?.value, h.append?.value ?? false]) ?? [];
    expect(headers.sort()).toEqual([
      ['x-multi', 'a', false],
      ['x-multi', 'b', true],
      ['x-user', 'alice', false],
    ]);
    expect(ok?.headersToRemove).toEqual(['x-secret']);
    expect(headerValue(ok?.responseHeadersToAdd, 'x-decided-by')).toBe('verdict');
    expect(ok?.queryParametersToSet).toEqual([{ key: 'tenant', value: 't1' }]);
    expect(ok?.queryParametersToRemove).toEqual(['debug']);
    expect(res.dynamicMetadata?.fields?.user?.stringValue).toBe('alice');
    expect(res.dynamicMetadata?.fields?.level?.numberValue).toBe(3);
  });

  it('maps a deny with status, body and headers to DeniedHttpResponse', async () => {
    const client = await serve(OBJECT_POLICY);
    const unauth = await client.check(httpCheckRequest({ path: '/x' }));
    expect(unauth.deniedResponse?.status?.code).toBe(401);
    expect(unauth.deniedResponse?.body).toBe('who are you?');
    expect(headerValue(unauth.deniedResponse?.headers, 'www-authenticate')).toBe('Bearer');
    const spam = await client.check(httpCheckRequest({ path: '/x', headers: { 'x-token': 'spam' } }));
    expect(spam.deniedResponse?.status?.code).toBe(429);
  });

  it('denies with 500 and ERR_POLICY_EVAL when the policy errors, then keeps serving', async () => {
    const client = await serve(FAILING_POLICY);
    const res = await client.check(httpCheckRequest({ method: 'GET', path: '/conflict' }));
    expect(res.deniedResponse?.status?.code).toBe(500);
    expect(headerValue(res.deniedResponse?.headers, 'x-verdict-reason')).toBe('ERR_POLICY_EVAL');
    const ok = await client.check(httpCheckRequest({ method: 'GET', path: '/fine' }));
    expect(ok.okResponse).toBeDefined();
  });

  it('denies when the rule is undefined for the input', async () => {
    const client = await serve(FAILING_POLICY);
    const res = await client.check(httpCheckRequest({ method: 'PUT', path: '/other' }));
    expect(headerValue(res.deniedResponse?.headers, 'x-verdict-reason')).toBe('ERR_POLICY_UNDEFINED');
  });

  it('denies with ERR_POLICY_RESULT when the result has the wrong shape', async () => {
    const client = await serve(BAD_SHAPE_POLICY);
    const res = await client.check(httpCheckRequest({ path: '/x' }));
    expect(res.deniedResponse?.status?.code).toBe(500);
    expect(headerValue(res.deniedResponse?.headers, 'x-verdict-reason')).toBe('ERR_POLICY_RESULT');
  });
});
