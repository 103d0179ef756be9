import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningVerdict } from '../../src/main';
import type { Tenant } from '../../src/tenancy/start-tenants';
import { makeKeyPair, opaBuild, type KeyPair } from '../helpers/bundle-fixtures';
import { nextActivation, nextRefusal, publishBundle } from '../helpers/bundle-publish';
import { startVerdictFromDocument } from '../helpers/verdict-from-document';
import { checkClient, headerValue, httpCheckRequest, tempDir, type CheckClient, type CheckResponse } from '../helpers/verdict-harness';

/** Names its tenant and revision in a header; cached by path (so a swap's effect on the cache is visible). */
function tenantBundle(key: KeyPair, tenant: string, revision: string): Promise<string> {
  return opaBuild({
    files: {
      'authz.rego': `package envoy.authz\n\nallow := {"allowed": true, "headers": {"x-bundle": "${tenant}-${revision}"}}\n`,
      '.manifest': JSON.stringify({
        revision,
        metadata: { verdict: { cache: { key: ['attributes.request.http.path'], ttlMs: 600_000 } } },
      }),
    },
    signingKey: key.privatePath,
  });
}

function forTenant(tenant: string | null, path = '/x'): Record<string, unknown> {
  const req = httpCheckRequest({ path }) as { attributes: { contextExtensions: Record<string, string> } };
  if (tenant === null) req.attributes.contextExtensions = { route: 'default' };
  else req.attributes.contextExtensions = { route: 'default', tenant };
  return req;
}

function answer(res: CheckResponse): string | undefined {
  return headerValue(res.okResponse?.headers, 'x-bundle') ?? headerValue(res.deniedResponse?.headers, 'x-verdict-reason');
}

describe('two tenants with their own bundles and signing keys behind one verdict (gRPC)', () => {
  let verdict: RunningVerdict;
  let client: CheckClient;
  let a: Tenant;
  let b: Tenant;
  const keyA = makeKeyPair('rsa');
  const keyB = makeKeyPair('rsa');
  const dir = tempDir();
  const pathA = join(dir, 'a.tar.gz');
  const pathB = join(dir, 'b.tar.gz');

  beforeAll(async () => {
    publishBundle(await tenantBundle(keyA, 'a', '1'), pathA);
    publishBundle(await tenantBundle(keyB, 'b', '1'), pathB);
    const tenant = (name: string, path: string, key: KeyPair): Record<string, unknown> => ({
      name,
      match: [name],
      bundles: {
        source: { type: 'file', path, debounceMs: 20 },
        opaSigning: { keys: { [name]: { keyFile: key.publicPath } }, keyId: name },
      },
    });
    verdict = await startVerdictFromDocument({
      tenants: { selector: { from: 'contextExtension', key: 'tenant' }, list: [tenant('a', pathA, keyA), tenant('b', pathB, keyB)] },
    });
    a = verdict.tenants!.tenants.get('a')!;
    b = verdict.tenants!.tenants.get('b')!;
    await Promise.all([a.started, b.started]);
    client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
  }, 60_000);

  afterAll(async () => {
    client?.close();
    await verdict?.stop();
  });

  it("decides each tenant's requests with its own bundle", async () => {
    expect(answer(await client.check(forTenant('a')))).toBe('a-1');
    expect(answer(await client.check(forTenant('b')))).toBe('b-1');
  });

  it('denies a request that names no configured tenant, with its code', async () => {
    for (const tenant of ['c', null]) {
      const res = await client.check(forTenant(tenant));
      expect(res.status?.code).not.toBe(0);
      expect(answer(res)).toBe('ERR_TENANT_UNKNOWN');
      expect(res.deniedResponse?.status?.code).toBe(403);
    }
  });

  it('denies ERR_TENANT_UNKNOWN a tenant value named like an Object.prototype member, or of 16 KiB, never another tenant', async () => {
    for (const tenant of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'a'.repeat(16 * 1024)]) {
      const res = await client.check(forTenant(tenant));
      expect(answer(res)).toBe('ERR_TENANT_UNKNOWN');
      expect(res.deniedResponse?.status?.code).toBe(403);
    }
  });

  it("refuses for tenant b a bundle signed with tenant a's key; b keeps serving its own", async () => {
    const refused = nextRefusal(b.policy);
    publishBundle(await tenantBundle(keyA, 'b', 'forged'), pathB);
    expect((await refused).code).toBe('ERR_BUNDLE_SIGNATURE');
    expect(answer(await client.check(forTenant('b')))).toBe('b-1');
    const loads = await verdict.metrics.registry.getSingleMetricAsString('verdict_tenant_bundle_loads_total');
    expect(loads).toContain('verdict_tenant_bundle_loads_total{tenant="b",outcome="rejected",reason="ERR_BUNDLE_SIGNATURE"} 1');
  });

  it("a swap for tenant a leaves b's cache and answers untouched", async () => {
    for (const p of ['/1', '/2', '/3']) {
      await client.check(forTenant('a', p));
      await client.check(forTenant('b', p));
    }
    const bBefore = b.cache!.store.stats();
    const bGeneration = b.policy.current!.generation;
    expect(bBefore.entries).toBeGreaterThanOrEqual(3);
    expect(a.cache!.store.stats().entries).toBeGreaterThanOrEqual(3);

    const swapped = nextActivation(a.loader);
    publishBundle(await tenantBundle(keyA, 'a', '2'), pathA);
    await swapped;

    expect(a.cache!.store.stats().entries).toBe(0); // a's swap invalidated a's namespace
    expect(b.cache!.store.stats()).toMatchObject({ entries: bBefore.entries, bytes: bBefore.bytes });
    expect(b.policy.current!.generation).toBe(bGeneration);
    expect(answer(await client.check(forTenant('a', '/1')))).toBe('a-2');
    const hitsBefore = b.cache!.store.stats().hits;
    expect(answer(await client.check(forTenant('b', '/1')))).toBe('b-1');
    expect(b.cache!.store.stats().hits).toBe(hitsBefore + 1); // answered from b's untouched cache
  });

  it('counts decisions and labels bundle info per tenant', async () => {
    const decisions = await verdict.metrics.registry.getSingleMetricAsString('verdict_tenant_decisions_total');
    expect(decisions).toMatch(/verdict_tenant_decisions_total\{tenant="a",result="allow",reason="ALLOWED"\} \d+/);
    expect(decisions).toMatch(/verdict_tenant_decisions_total\{tenant="b",result="allow",reason="ALLOWED"\} \d+/);
    const info = await verdict.metrics.registry.getSingleMetricAsString('verdict_tenant_bundle_info');
    expect(info).toContain(`tenant="a",name="`);
    expect(info).toContain(`sha256="${b.policy.current!.bundle.sha256}"`);
  });
});
