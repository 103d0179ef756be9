import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningVerdict } from '../../src/main';
import { BACKEND_ID, FRONTEND_ID, mintTestPKI, type CertFiles, type TestPKI } from '../helpers/envoy-certs';
import { send, type ClientResponse } from '../helpers/envoy-client';
import type { RunningEnvoy } from '../helpers/envoy-process';
import { printEnvoyLogsOnFailure, startE2EVerdict, startEnvoyFor } from '../helpers/envoy-stack';
import { startEchoUpstream, type EchoUpstream } from '../helpers/upstream-echo';
import { tempDir } from '../helpers/verdict-harness';

// mTLS with run-time minted X509-SVIDs: callers → Envoy (envoy/mtls.yaml, HTTP ext_authz over gRPC, and
// envoy/network-l4.yaml, network ext_authz), Envoy → verdict over mTLS. The e2e policy allows the
// frontend's SPIFFE ID as Envoy forwards it in attributes.source.principal.

type Caller = 'frontend' | 'backend' | 'untrusted';

describe('mTLS with SPIFFE IDs, HTTP (gRPC Check) and L4 (network ext_authz)', () => {
  let pki: TestPKI;
  let upstream: EchoUpstream;
  let verdict: RunningVerdict;
  let httpEnvoy: RunningEnvoy;
  let l4Envoy: RunningEnvoy;
  printEnvoyLogsOnFailure(() => [httpEnvoy, l4Envoy]);

  beforeAll(async () => {
    pki = mintTestPKI(tempDir('verdict-pki-'));
    upstream = await startEchoUpstream();
    const credentials = grpc.ServerCredentials.createSsl(
      Buffer.from(pki.ca.cert),
      [{ private_key: Buffer.from(pki.verdict.key), cert_chain: Buffer.from(pki.verdict.cert) }],
      true,
    );
    verdict = await startE2EVerdict([], { credentials });
    const files = { CA_CERT: pki.ca.certFile, ENVOY_CERT: pki.envoy.certFile, ENVOY_KEY: pki.envoy.keyFile };
    const common = { LISTENER_PORT: 0, APP_PORT: upstream.port, VERDICT_PORT: verdict.grpcPort, AUTHZ_TIMEOUT: '2s', ...files };
    httpEnvoy = await startEnvoyFor('mtls.yaml', common);
    l4Envoy = await startEnvoyFor('network-l4.yaml', common);
  });
  afterAll(async () => {
    await httpEnvoy?.stop();
    await l4Envoy?.stop();
    await verdict?.stop();
    await upstream?.stop();
  });

  function tlsAs(caller: Caller): { ca: string; cert: string; key: string } {
    const c: CertFiles = pki[caller];
    return { ca: pki.ca.cert, cert: c.cert, key: c.key };
  }

  it('allows the frontend SVID by SPIFFE ID; principal and certificate reach the policy (over verdict mTLS)', async () => {
    const res = await send(httpEnvoy.listenerPort('ingress_http'), { path: '/api/orders', tls: tlsAs('frontend') });
    expect(res.status).toBe(200);
    const hit = upstream.hits.at(-1);
    expect(hit?.headers['x-verdict-caller']).toBe(FRONTEND_ID);
    expect(hit?.headers['x-peer-cert']).toBe('present');
  });

  it('denies a trusted SVID with another SPIFFE ID (403 from the policy)', async () => {
    const before = upstream.hits.length;
    const res = await send(httpEnvoy.listenerPort('ingress_http'), { path: '/api/orders', tls: tlsAs('backend') });
    expect(res.status).toBe(403);
    expect(res.headers['x-denied-by']).toBe('e2e');
    expect(upstream.hits.length).toBe(before);
    expect(BACKEND_ID).not.toBe(FRONTEND_ID);
  });

  it('refuses a certificate from an untrusted CA at the handshake', async () => {
    const before = upstream.hits.length;
    await expect(send(httpEnvoy.listenerPort('ingress_http'), { path: '/api/orders', tls: tlsAs('untrusted') })).rejects.toThrow();
    expect(upstream.hits.length).toBe(before);
  });

  /** L4: allowed = the proxied HTTP request reaches upstream; denied = Envoy closes the connection. */
  async function viaL4(caller: Caller): Promise<'allow' | 'deny'> {
    const before = upstream.hits.length;
    let res: ClientResponse | undefined;
    try {
      res = await send(l4Envoy.listenerPort('ingress_tcp'), { path: '/api/orders', tls: tlsAs(caller) });
    } catch {
      res = undefined;
    }
    return res?.status === 200 && upstream.hits.length > before ? 'allow' : 'deny';
  }

  async function viaHTTP(caller: Caller): Promise<'allow' | 'deny'> {
    try {
      const res = await send(httpEnvoy.listenerPort('ingress_http'), { path: '/api/orders', tls: tlsAs(caller) });
      return res.status === 200 ? 'allow' : 'deny';
    } catch {
      return 'deny';
    }
  }

  it.each([
    { caller: 'frontend' as const, expected: 'allow' },
    { caller: 'backend' as const, expected: 'deny' },
    { caller: 'untrusted' as const, expected: 'deny' },
  ])('L4 mode decides $caller like the HTTP gRPC mode ($expected)', async ({ caller, expected }) => {
    const l4 = await viaL4(caller);
    expect(l4).toBe(expected);
    expect(l4).toBe(await viaHTTP(caller));
  });

  it('the L4 filter really asked verdict (network ext_authz counters)', async () => {
    expect(await l4Envoy.stat('ext_authz.verdict_l4.ok')).toBeGreaterThan(0);
    expect(await l4Envoy.stat('ext_authz.verdict_l4.denied')).toBeGreaterThan(0);
  });
});
