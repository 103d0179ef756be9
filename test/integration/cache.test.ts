import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Decision } from '../../src/decision/decision';
import type { DecisionLog, DecisionRecord } from '../../src/decisionlog/decision-record';
import type { RunningVerdict } from '../../src/main';
import { buildTestBundle, checkClient, httpCheckRequest, startTestVerdict, type CheckClient } from '../helpers/verdict-harness';

/** A real DecisionLog that keeps records in memory so the test can read the cached flag. */
class RecordingLog implements DecisionLog {
  readonly records: DecisionRecord[] = [];
  emit(record: DecisionRecord, _d: Decision): void {
    this.records.push(record);
  }
  async close(): Promise<void> {}
}

const TENANT_POLICY = `package envoy.authz
import rego.v1
default allow := false
allow if { input.attributes.request.http.method == "GET"; input.attributes.request.http.headers["x-tenant"] == "t1" }
`;

function manifest(key: string[]): string {
  return JSON.stringify({ roots: ['envoy'], metadata: { verdict: { entrypoint: 'envoy/authz/allow', cache: { key, ttlMs: 60_000 } } } });
}

describe('decision cache through gRPC Check (real OPA)', () => {
  let verdict: RunningVerdict;
  let client: CheckClient;
  const log = new RecordingLog();
  beforeAll(async () => {
    verdict = await startTestVerdict([], { decisionLog: log });
    await verdict.cache!.settled();
    client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
  });
  afterAll(async () => {
    client.close();
    await verdict.stop();
  });

  it('answers the second identical request from the cache, recording only the key fields', async () => {
    const req = httpCheckRequest({ method: 'GET', path: '/healthz', headers: { authorization: 'Bearer s3cret' } });
    const first = await client.check(req);
    const second = await client.check(req);
    expect(first.okResponse).toBeDefined();
    expect(second.okResponse).toBeDefined();
    const [a, b] = log.records.slice(-2);
    expect([a?.cached, b?.cached]).toEqual([false, true]);
    expect(b?.input_kind).toBe('cache_key');
    expect(b?.input).toEqual({ attributes: { request: { http: { method: 'GET', path: '/healthz' } } } });
  });

  it('every cache hit answers with its own decision_id (the one its log record has), all else equal', async () => {
    const req = httpCheckRequest({ method: 'GET', path: '/healthz/ids' });
    const responses = [];
    for (let i = 0; i < 4; i++) responses.push(await client.check(req));
    const records = log.records.slice(-4);
    expect(records.map((r) => r.cached)).toEqual([false, true, true, true]);
    const ids = responses.map(
      (r) => (r.dynamicMetadata as { fields: { decision_id: { stringValue: string } } }).fields.decision_id.stringValue,
    );
    expect(ids).toEqual(records.map((r) => r.decision_id));
    expect(new Set(ids).size).toBe(4);
    const withoutId = responses.map((r) => ({ ...r, dynamicMetadata: undefined }));
    for (const r of withoutId.slice(1)) expect(r).toEqual(withoutId[0]);
  });

  it('caches denies too, and a different declared field is a different entry', async () => {
    const before = verdict.cache!.store.stats();
    await client.check(httpCheckRequest({ method: 'DELETE', path: '/x' }));
    await client.check(httpCheckRequest({ method: 'DELETE', path: '/x' }));
    await client.check(httpCheckRequest({ method: 'DELETE', path: '/y' }));
    const after = verdict.cache!.store.stats();
    expect(after.hits - before.hits).toBe(1);
    expect(after.misses - before.misses).toBe(2);
  });

  it('evaluates once for 1,000 concurrent identical Checks', async () => {
    const before = verdict.cache!.store.stats();
    const req = httpCheckRequest({ method: 'GET', path: '/public/concurrent.html' });
    const responses = await Promise.all(Array.from({ length: 1000 }, () => client.check(req)));
    expect(responses.every((r) => r.okResponse !== undefined)).toBe(true);
    const after = verdict.cache!.store.stats();
    expect(after.evaluations - before.evaluations).toBe(1);
    expect(after.hits + after.coalesced - before.hits - before.coalesced).toBe(999);
  });

  it('a bundle swap invalidates: the cached allow is re-decided by the new bundle', async () => {
    const req = httpCheckRequest({ method: 'GET', path: '/healthz' });
    expect((await client.check(req)).okResponse).toBeDefined();
    const denyAll = await buildTestBundle({
      'policy.rego':
        'package envoy.authz\nimport rego.v1\ndefault allow := false\nallow if input.attributes.request.http.method == "NONE"\n',
      '.manifest': manifest(['attributes.request.http.method']),
    });
    await verdict.policy.activateFile(denyAll);
    await verdict.cache!.settled();
    const res = await client.check(req);
    expect(res.deniedResponse?.status?.code).toBe(403);
    expect(log.records.at(-1)?.cached).toBe(false);
  });
});

describe('decision cache with cache.lint=enforce', () => {
  let verdict: RunningVerdict;
  let client: CheckClient;
  beforeAll(async () => {
    const bundle = await buildTestBundle({ 'policy.rego': TENANT_POLICY, '.manifest': manifest(['attributes.request.http.method']) });
    verdict = await startTestVerdict([`policy.bundle=${bundle}`, 'cache.lint=enforce']);
    await verdict.cache!.settled();
    client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
  });
  afterAll(async () => {
    client.close();
    await verdict.stop();
  });

  it('does not cache a bundle whose key it cannot check, and says so on /metrics', async () => {
    // The key omits x-tenant: cached, t2 would get t1's allow. An OPA wasm bundle has no Rego source to
    // check at load, so enforce mode does not cache it (lint the source dir with `verdict bundle lint`).
    const t1 = httpCheckRequest({ method: 'GET', headers: { 'x-tenant': 't1' } });
    const t2 = httpCheckRequest({ method: 'GET', headers: { 'x-tenant': 't2' } });
    expect((await client.check(t1)).okResponse).toBeDefined();
    expect((await client.check(t2)).deniedResponse?.status?.code).toBe(403);
    expect(verdict.cache!.store.stats()).toMatchObject({ hits: 0, misses: 0 });
    const text = await (await fetch(`http://127.0.0.1:${verdict.httpPort}/metrics`)).text();
    expect(text).toMatch(/verdict_cache_lint_findings\{bundle="bundle",sha256="[0-9a-f]{64}"\} -1/);
  });
});
