import { X509Certificate } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock';
import { loadConfig } from '../../src/config/load-config';
import { WorkloadAPIClient, type OwnX509SVID } from '../../src/identity/workload-api-client';
import { startVerdict, type RunningVerdict } from '../../src/main';
import { createLogger } from '../../src/telemetry/logger';
import { createTestCgroup, requireBPF, testPinDir } from '../helpers/bpf-kernel';
import { startEnvoyFor } from '../helpers/envoy-stack';
import { startEchoUpstream } from '../helpers/upstream-echo';
import { mtlsCheckClient, SPIRE, waitFor } from '../helpers/spire-harness';
import { createCA, exportCA, issueX509SVID, privateKeyPEM, type TestCA } from '../helpers/svid-authority';
import { buildTestBundle, checkClient, headerValue, httpCheckRequest, tempDir } from '../helpers/verdict-harness';

// Allows only a verified caller of example.org and echoes the spiffe block, so the test sees the input.
const POLICY = `package envoy.authz
import rego.v1
default allow := {"allowed": false, "http_status": 409}
allow := {"allowed": true, "headers": {"x-spiffe": json.marshal(input.spiffe)}} if input.spiffe.trust_domain == "example.org"
`;
const ID = 'spiffe://example.org/verdict';
// Short X509-SVID TTL: the agent rotates at about half of it, so rotation is seen within the test.
const X509_TTL_S = 20;

const spire = new SPIRE();
let workload: WorkloadAPIClient;
let verdict: RunningVerdict;
let policyBundle: string | undefined;

/** The test process is the registered workload (unix:uid) and Envoy's stand-in: it holds SPIRE's SVIDs. */
function pem(svid: OwnX509SVID): { certPEM: string; keyPEM: string } {
  return {
    certPEM: svid.certificates.map((c) => c.toString()).join(''),
    keyPEM: svid.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
  };
}

function clientFor(svid: OwnX509SVID | null, port = verdict.grpcPort): ReturnType<typeof mtlsCheckClient> {
  const rootsPEM = workload
    .allX509Authorities()
    .map((c) => c.toString())
    .join('');
  return mtlsCheckClient(`127.0.0.1:${port}`, { rootsPEM, serverID: ID, ...(svid ? pem(svid) : {}) });
}

function withCertificate(svid: OwnX509SVID): Record<string, unknown> {
  const req = httpCheckRequest({}) as { attributes: { source: Record<string, unknown> } };
  req.attributes.source.certificate = encodeURIComponent((svid.certificates[0] as X509Certificate).toString());
  return req;
}

function bearer(token: string): Record<string, unknown> {
  return httpCheckRequest({ headers: { authorization: `Bearer ${token}` } });
}

// A policy whose decisions the cache may keep (the key covers all it reads), for the bundle-change test.
const CACHED_POLICY = `package envoy.authz
import rego.v1
default allow := false
allow if input.attributes.request.http.path == "/cached"
`;
const CACHED_MANIFEST = JSON.stringify({
  revision: 'cached',
  roots: ['envoy'],
  metadata: { verdict: { cache: { key: ['attributes.request.http.path'], ttlMs: 60_000, denyTtlMs: 60_000 } } },
});
let cachedBundle: string | undefined;
const counterValue = async (v: RunningVerdict): Promise<number> => (await v.metrics.trustBundleUpdates.get()).values[0]?.value ?? 0;
async function cachedPolicyBundle(): Promise<string> {
  cachedBundle ??= await buildTestBundle({ '.manifest': CACHED_MANIFEST, 'p.rego': CACHED_POLICY });
  return cachedBundle;
}

beforeAll(async () => {
  try {
    await spire.start();
    await spire.registerWorkload(ID, { x509SVIDTTLs: X509_TTL_S });
  } catch (err) {
    throw new Error(`SPIRE did not start: ${(err as Error).message}\n${spire.tail()}`);
  }
  workload = new WorkloadAPIClient({
    socket: `unix://${spire.agentSocket}`,
    clock: systemClock,
    logger: createLogger('silent'),
    reconnectInitialMs: 100,
    reconnectMaxMs: 1000,
    bundleStalenessMs: 60_000,
    fetchX509SVID: true,
  });
  workload.start();
  await waitFor('the test workload to get its SVID and bundles', () => workload.isReady(), 60_000).catch((e: unknown) => {
    throw new Error(String(e) + spire.tail());
  });

  verdict = await startSPIFFEVerdict([ID]);
}, 180_000);

/** verdict with identity from the agent's Workload API and its listener on mTLS for `allowedCallers`. */
async function startSPIFFEVerdict(allowedCallers: string[], overrides: string[] = []): Promise<RunningVerdict> {
  const dir = tempDir();
  writeFileSync(
    join(dir, 'verdict.yaml'),
    [
      'identity:',
      '  enabled: true',
      `  workloadAPI: { socket: "unix://${spire.agentSocket}", reconnectInitialMs: 100, reconnectMaxMs: 1000, bundleStalenessMs: 1000 }`,
      '  jwt: { audiences: [verdict] }',
      `  mtls: { enabled: true, allowedCallers: ${JSON.stringify(allowedCallers)} }`,
    ].join('\n'),
  );
  policyBundle ??= await buildTestBundle({ 'p.rego': POLICY });
  const config = loadConfig({
    file: join(dir, 'verdict.yaml'),
    overrides: ['server.grpc.port=0', 'server.http.port=null', 'log.level=silent', `policy.bundle=${policyBundle}`, ...overrides],
  });
  const started = await startVerdict(config, { logger: createLogger('silent') });
  await waitFor('verdict identity ready (bundles and own SVID)', () => started.identity?.isReady() === true, 60_000);
  return started;
}

afterAll(async () => {
  await verdict?.stop();
  workload?.close();
  await spire.stop();
});

describe('verdict against a real SPIRE (v1.13.3)', () => {
  it('a registered workload gets its X509-SVID from the agent', () => {
    const svid = workload.currentX509SVID;
    expect(svid?.spiffeID).toBe(ID);
    expect(svid?.certificates[0]?.subjectAltName).toContain(`URI:${ID}`);
  });

  it('verdict streams X.509 and JWT bundles from the agent socket', () => {
    const bundle = verdict.identity?.bundles.bundleForTrustDomain('example.org');
    expect(bundle?.x509Authorities.length).toBeGreaterThan(0);
    expect(bundle?.jwtAuthorities.size).toBeGreaterThan(0);
  });

  it('over mTLS, a JWT-SVID minted by SPIRE is accepted and one for another audience is refused', async () => {
    const client = clientFor(workload.currentX509SVID);
    try {
      const [good] = await workload.fetchJWTSVID(['verdict']);
      const ok = await client.check(bearer(good?.token ?? ''));
      expect(JSON.parse(headerValue(ok.okResponse?.headers, 'x-spiffe') ?? '{}')).toMatchObject({ id: ID, svid_type: 'jwt' });
      const [wrong] = await workload.fetchJWTSVID(['someone-else']);
      const denied = await client.check(bearer(wrong?.token ?? ''));
      expect(denied.deniedResponse?.status?.code).toBe(401);
      expect(headerValue(denied.deniedResponse?.headers, 'x-verdict-reason')).toBe('ERR_JWT_AUDIENCE');
    } finally {
      client.close();
    }
  });

  it('an X.509-SVID issued by SPIRE verifies (as Envoy forwards it)', async () => {
    const client = clientFor(workload.currentX509SVID);
    try {
      const res = await client.check(withCertificate(workload.currentX509SVID as OwnX509SVID));
      expect(JSON.parse(headerValue(res.okResponse?.headers, 'x-spiffe') ?? '{}')).toMatchObject({ id: ID, svid_type: 'x509' });
    } finally {
      client.close();
    }
  });

  it('the mTLS listener refuses a caller without a client SVID', async () => {
    const client = clientFor(null);
    try {
      await expect(client.check(httpCheckRequest({}))).rejects.toThrow();
    } finally {
      client.close();
    }
  });

  it('the mTLS listener refuses a caller whose valid SVID is not in allowedCallers', async () => {
    const strict = await startSPIFFEVerdict(['spiffe://example.org/ns/mesh/sa/envoy', 'spiffe://example.org/ns/edge/*']);
    const client = clientFor(workload.currentX509SVID, strict.grpcPort);
    try {
      await expect(client.check(httpCheckRequest({}))).rejects.toMatchObject({ code: 7, details: 'ERR_SVID_UNTRUSTED' });
    } finally {
      client.close();
      await strict.stop();
    }
  });

  it('after SPIRE rotates the SVIDs, verdict keeps serving with the new ones, without restart', async () => {
    const before = verdict.identity?.workloadAPI?.currentX509SVID?.certificates[0]?.fingerprint256;
    const beforeSerial = verdict.identity?.workloadAPI?.currentX509SVID?.certificates[0]?.serialNumber;
    await waitFor(
      "SPIRE to rotate verdict's X509-SVID",
      () => verdict.identity?.workloadAPI?.currentX509SVID?.certificates[0]?.fingerprint256 !== before,
      X509_TTL_S * 1000 * 2,
      250,
    );
    await waitFor(
      'the test workload to get a rotated SVID too',
      () => workload.currentX509SVID?.certificates[0]?.fingerprint256 !== before,
      30_000,
      250,
    );
    const rotated = workload.currentX509SVID as OwnX509SVID;
    const client = clientFor(rotated);
    try {
      const res = await client.check(withCertificate(rotated));
      expect(JSON.parse(headerValue(res.okResponse?.headers, 'x-spiffe') ?? '{}')).toMatchObject({ id: ID, svid_type: 'x509' });
      // The listener served the NEW certificate on this fresh connection: the serial the client saw is that
      // of verdict's current SVID, not the one from before the rotation.
      const served = verdict.identity?.workloadAPI?.currentX509SVID?.certificates[0];
      expect(client.serverSerials.length).toBeGreaterThan(0);
      expect(client.serverSerials.at(-1)).toBe(served?.serialNumber);
      expect(client.serverSerials.at(-1)).not.toBe(beforeSerial);
    } finally {
      client.close();
    }
  }, 90_000);

  it('a trust-bundle change from SPIRE clears the decision cache and bumps the kernel generation', async () => {
    const cgroup = createTestCgroup('spire');
    const pinDir = testPinDir('spire');
    requireBPF();
    const cached = await startSPIFFEVerdict(
      [ID],
      [
        `policy.bundle=${await cachedPolicyBundle()}`,
        'fastpath.enabled=true',
        'fastpath.required=true',
        `fastpath.cgroupPath=${cgroup.path}`,
        `fastpath.pinPath=${pinDir}`,
      ],
    );
    const client = clientFor(workload.currentX509SVID, cached.grpcPort);
    try {
      const req = httpCheckRequest({ path: '/cached' });
      await client.check(req);
      await client.check(req);
      expect(cached.cache?.store.stats().entries).toBe(1);
      expect(cached.cache?.store.stats().hits).toBeGreaterThan(0);
      const generation = cached.fastpath.status().generation;
      const updates = await counterValue(cached);
      const authoritiesBefore = cached.identity?.bundles.bundleForTrustDomain('example.org')?.x509Authorities.length ?? 0;
      await spire.prepareX509Authority();
      await waitFor(
        'the new X.509 authority to reach verdict through the Workload API',
        () => (cached.identity?.bundles.bundleForTrustDomain('example.org')?.x509Authorities.length ?? 0) > authoritiesBefore,
        30_000,
        100,
      );
      expect(await counterValue(cached)).toBeGreaterThan(updates);
      expect(cached.cache?.store.stats().entries).toBe(0);
      expect(cached.fastpath.status().generation).not.toBe(generation);
      // And the next identical request is evaluated again (a miss), not answered from before the change.
      const misses = cached.cache?.store.stats().misses ?? 0;
      await client.check(req);
      expect(cached.cache?.store.stats().misses).toBe(misses + 1);
    } finally {
      client.close();
      await cached.stop();
      cgroup.remove();
    }
  }, 90_000);

  it('after the agent restarts, verdict goes unready while bundles are stale, then reconnects and keeps working', async () => {
    await spire.stopAgent();
    await waitFor('verdict unready (bundles stale)', () => verdict.identity?.isReady() === false, 15_000);
    await spire.startAgent();
    await waitFor('verdict ready again', () => verdict.identity?.isReady() === true, 30_000);
    await waitFor('the test workload back too', () => workload.isReady(), 30_000);
    const [token] = await workload.fetchJWTSVID(['verdict']);
    const client = clientFor(workload.currentX509SVID);
    try {
      const res = await client.check(bearer(token?.token ?? ''));
      expect(JSON.parse(headerValue(res.okResponse?.headers, 'x-spiffe') ?? '{}')).toMatchObject({ id: ID, svid_type: 'jwt' });
    } finally {
      client.close();
    }
  }, 90_000);
});

/** One HTTPS request to Envoy with a client SVID; Envoy's certificate names a SPIFFE ID, not a host. */
function httpsVia(
  port: number,
  ca: string,
  cert: string,
  key: string,
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path: '/api/orders',
        agent: false,
        ca,
        cert,
        key,
        timeout: 10_000,
        checkServerIdentity: (_host, peer) =>
          peer.subjectaltname?.includes('URI:spiffe://example.org/') ? undefined : new Error('not a SPIFFE server'),
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/**
 * SPIRE behind a `disk` UpstreamAuthority whose CA the test makes at run time: SPIRE's own CA is then an
 * intermediate, so every SVID chains leaf → SPIRE intermediate → upstream CA, and only the upstream CA is in
 * the bundle. Envoy forwards only the leaf; verdict finds the intermediate in its own SVID's chain (a).
 */
describe('SPIRE with a disk UpstreamAuthority (SVIDs issued by an intermediate)', () => {
  const UP_ID = 'spiffe://example.org/ns/verdict/sa/verdict';
  let upstreamCA: TestCA;
  let upstream: SPIRE;
  let upWorkload: WorkloadAPIClient;
  const started: RunningVerdict[] = [];

  beforeAll(async () => {
    upstreamCA = await createCA('verdict test upstream CA');
    const dir = tempDir('verdict-upstream-ca-');
    const { certPEM, keyPEM } = await exportCA(upstreamCA);
    writeFileSync(join(dir, 'ca.pem'), certPEM);
    writeFileSync(join(dir, 'ca-key.pem'), keyPEM);
    upstream = new SPIRE({ upstreamCA: { certPath: join(dir, 'ca.pem'), keyPath: join(dir, 'ca-key.pem') } });
    try {
      await upstream.start();
      await upstream.registerWorkload(UP_ID);
    } catch (err) {
      throw new Error(String(err) + upstream.tail());
    }
    upWorkload = new WorkloadAPIClient({
      socket: `unix://${upstream.agentSocket}`,
      clock: systemClock,
      logger: createLogger('silent'),
      reconnectInitialMs: 100,
      reconnectMaxMs: 1000,
      bundleStalenessMs: 60_000,
      fetchX509SVID: true,
    });
    upWorkload.start();
    await waitFor('the workload SVID from the upstream-backed SPIRE', () => upWorkload.isReady(), 60_000).catch((e: unknown) => {
      throw new Error(String(e) + upstream.tail());
    });
  }, 180_000);

  afterAll(async () => {
    for (const v of started.splice(0)) await v.stop();
    upWorkload?.close();
    await upstream?.stop();
  });

  async function verdictWith(fromWorkloadAPI: boolean, extra: string[] = []): Promise<RunningVerdict> {
    const dir = tempDir();
    writeFileSync(
      join(dir, 'verdict.yaml'),
      [
        'identity:',
        '  enabled: true',
        `  workloadAPI: { socket: "unix://${upstream.agentSocket}", reconnectInitialMs: 100, reconnectMaxMs: 1000 }`,
        `  x509: { intermediates: { fromWorkloadAPI: ${fromWorkloadAPI} } }`,
        ...extra,
      ].join('\n'),
    );
    policyBundle ??= await buildTestBundle({ 'p.rego': POLICY });
    const config = loadConfig({
      file: join(dir, 'verdict.yaml'),
      overrides: ['server.grpc.port=0', 'server.http.port=null', 'log.level=silent', `policy.bundle=${policyBundle}`],
    });
    const v = await startVerdict(config, { logger: createLogger('silent') });
    started.push(v);
    await waitFor('verdict identity ready', () => v.identity?.isReady() === true, 60_000);
    if (fromWorkloadAPI)
      await waitFor("verdict's own SVID (its chain is the candidate)", () => v.identity?.workloadAPI?.currentX509SVID != null, 60_000);
    return v;
  }

  /** What Envoy sends: the leaf alone, URL-encoded PEM. */
  function leafOnly(leafPEM: string): Record<string, unknown> {
    const req = httpCheckRequest({}) as { attributes: { source: Record<string, unknown> } };
    req.attributes.source.certificate = encodeURIComponent(leafPEM);
    return req;
  }

  it('SVIDs chain through SPIRE’s intermediate to the upstream CA, which alone is in the bundle', () => {
    const svid = upWorkload.currentX509SVID as OwnX509SVID;
    expect(svid.certificates.length).toBeGreaterThanOrEqual(2);
    const authorities = upWorkload.bundleForTrustDomain('example.org')?.x509Authorities.map((c) => c.fingerprint256) ?? [];
    expect(authorities).toContain(upstreamCA.cert.fingerprint256);
    expect(authorities).not.toContain(svid.certificates[1]?.fingerprint256);
    expect(svid.certificates[1]?.checkIssued(upstreamCA.cert)).toBe(true);
  });

  it('(a) a caller forwarded as Envoy does (leaf only) is accepted with the own-SVID chain, refused without it', async () => {
    const leaf = (upWorkload.currentX509SVID as OwnX509SVID).certificates[0] as X509Certificate;
    const withChain = await verdictWith(true);
    const without = await verdictWith(false);
    const a = checkClient(`127.0.0.1:${withChain.grpcPort}`);
    const b = checkClient(`127.0.0.1:${without.grpcPort}`);
    try {
      const ok = await a.check(leafOnly(leaf.toString()));
      expect(JSON.parse(headerValue(ok.okResponse?.headers, 'x-spiffe') ?? '{}')).toMatchObject({ id: UP_ID, svid_type: 'x509' });
      const refused = await b.check(leafOnly(leaf.toString()));
      expect(refused.deniedResponse?.status?.code).toBe(403);
      expect(headerValue(refused.deniedResponse?.headers, 'x-verdict-reason')).toBe('ERR_SVID_UNTRUSTED');
    } finally {
      a.close();
      b.close();
    }
  });

  it('(a) a caller whose SVID a foreign CA signed is refused, even one naming SPIRE’s intermediate as issuer', async () => {
    const v = started.find((s) => s.identity?.workloadAPI?.currentX509SVID) ?? (await verdictWith(true));
    const spireIntermediate = (upWorkload.currentX509SVID as OwnX509SVID).certificates[1] as X509Certificate;
    const foreignRoot = await createCA('foreign CA');
    // An impostor with SPIRE's intermediate's subject name but its own key: name chaining finds the real
    // intermediate as a candidate, whose key did not sign this leaf.
    const impostor = await createCA('impostor', { subjectOf: spireIntermediate, parent: foreignRoot });
    const cases: [string, string, string][] = [
      ['foreign root', (await issueX509SVID(foreignRoot, 'spiffe://example.org/ns/evil/sa/x')).pem, 'ERR_SVID_UNTRUSTED'],
      ['impostor intermediate', (await issueX509SVID(impostor, 'spiffe://example.org/ns/evil/sa/x')).pem, 'ERR_SVID_SIGNATURE'],
    ];
    const client = checkClient(`127.0.0.1:${v.grpcPort}`);
    try {
      for (const [name, pemText, code] of cases) {
        const res = await client.check(leafOnly(pemText));
        expect(headerValue(res.deniedResponse?.headers, 'x-verdict-reason'), name).toBe(code);
      }
    } finally {
      client.close();
    }
  });

  it("verdict's mTLS listener verifies the whole chain the client presents (no other candidates configured)", async () => {
    const v = await verdictWith(false, [`  mtls: { enabled: true, allowedCallers: ["${UP_ID}"] }`]);
    const own = upWorkload.currentX509SVID as OwnX509SVID;
    const rootsPEM = upWorkload
      .allX509Authorities()
      .map((c) => c.toString())
      .join('');
    const keyPEM = own.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
    const client = mtlsCheckClient(`127.0.0.1:${v.grpcPort}`, {
      rootsPEM,
      serverID: UP_ID,
      certPEM: own.certificates.map((c) => c.toString()).join(''),
      keyPEM,
    });
    try {
      // The listener admits the caller (else PERMISSION_DENIED rejects the call) only if it built
      // leaf → presented intermediate → upstream CA: no other candidate is configured.
      await expect(client.check(httpCheckRequest({}))).resolves.toBeDefined();
      expect(client.serverSerials.at(-1)).toBe(v.identity?.workloadAPI?.currentX509SVID?.certificates[0]?.serialNumber);
    } finally {
      client.close();
    }
  });

  it('through a real Envoy sidecar: the caller is accepted with (a), refused when a foreign CA signed its SVID', async () => {
    const dir = tempDir('verdict-upstream-envoy-');
    const own = upWorkload.currentX509SVID as OwnX509SVID;
    const foreignRoot = await createCA('foreign CA at the edge');
    const foreignCaller = await issueX509SVID(foreignRoot, 'spiffe://example.org/ns/evil/sa/x');
    const chainPEM = own.certificates.map((c) => c.toString()).join('');
    const keyPEM = own.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
    writeFileSync(join(dir, 'envoy.pem'), chainPEM);
    writeFileSync(join(dir, 'envoy-key.pem'), keyPEM);
    // Envoy trusts the foreign CA too (a shared edge, or a mistake): only verdict's check, against the bundle of
    // the SVID's own trust domain, stands between that caller and the app.
    writeFileSync(join(dir, 'ca.pem'), `${upstreamCA.pem}\n${foreignRoot.pem}\n`);
    const v = await verdictWith(true, [`  mtls: { enabled: true, allowedCallers: ["${UP_ID}"] }`]);
    const app = await startEchoUpstream();
    const envoy = await startEnvoyFor('mtls.yaml', {
      LISTENER_PORT: 0,
      APP_PORT: app.port,
      VERDICT_PORT: v.grpcPort,
      AUTHZ_TIMEOUT: '2s',
      CA_CERT: join(dir, 'ca.pem'),
      ENVOY_CERT: join(dir, 'envoy.pem'),
      ENVOY_KEY: join(dir, 'envoy-key.pem'),
    });
    try {
      const port = envoy.listenerPort('ingress_http');
      const ok = await httpsVia(port, upstreamCA.pem, chainPEM, keyPEM);
      expect(ok.status, ok.body).toBe(200);
      expect(JSON.parse(String(app.hits.at(-1)?.headers['x-spiffe']))).toMatchObject({ id: UP_ID, svid_type: 'x509' });
      const before = app.hits.length;
      const refused = await httpsVia(port, upstreamCA.pem, foreignCaller.pem, await privateKeyPEM(foreignCaller.keys));
      expect(refused.status).toBe(403);
      expect(refused.headers['x-verdict-reason']).toBe('ERR_SVID_UNTRUSTED');
      expect(app.hits.length).toBe(before);
    } finally {
      await envoy.stop();
      await app.stop();
    }
  }, 90_000);
});
