import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningVerdict } from '../../src/main';
import { send } from '../helpers/envoy-client';
import type { RunningEnvoy } from '../helpers/envoy-process';
import { printEnvoyLogsOnFailure, startE2EVerdict, startSidecarEnvoy } from '../helpers/envoy-stack';
import { startEchoUpstream, type EchoUpstream, type UpstreamHit } from '../helpers/upstream-echo';

// Real Envoy (envoy/sidecar-grpc.yaml) → real verdict over gRPC → real upstream, all on loopback ports
// chosen at run time.

describe('sidecar-grpc: Envoy http ext_authz over gRPC', () => {
  let upstream: EchoUpstream;
  let verdict: RunningVerdict;
  let envoy: RunningEnvoy;
  let port: number;
  printEnvoyLogsOnFailure(() => [envoy]);

  beforeAll(async () => {
    upstream = await startEchoUpstream();
    verdict = await startE2EVerdict();
    envoy = await startSidecarEnvoy(verdict, upstream);
    port = envoy.listenerPort('ingress_http');
  });
  afterAll(async () => {
    await envoy?.stop();
    await verdict?.stop();
    await upstream?.stop();
  });

  function lastHit(): UpstreamHit {
    const hit = upstream.hits.at(-1);
    if (!hit) throw new Error('upstream received nothing');
    return hit;
  }

  it('allows: the upstream sees the headers the policy added and not those it removed', async () => {
    const res = await send(port, { path: '/public/page', headers: { 'x-secret': 's3cret', 'x-verdict-rule': 'forged' } });
    expect(res.status).toBe(200);
    expect(res.headers['x-upstream']).toBe('echo');
    const hit = lastHit();
    expect(hit.url).toBe('/public/page');
    expect(hit.headers['x-verdict-rule']).toBe('public');
    expect(hit.headers['x-secret']).toBeUndefined();
    // check_settings.context_extensions of the route reached the policy.
    expect(hit.headers['x-verdict-service']).toBe('app');
  });

  it('denies with the policy status, body and headers, and never reaches upstream', async () => {
    const before = upstream.hits.length;
    const res = await send(port, { path: '/teapot' });
    expect(res.status).toBe(409);
    expect(res.body).toBe('no tea here\n');
    expect(res.headers['x-denied-by']).toBe('teapot');
    expect(res.headers['x-verdict-reason']).toBe('DENIED_BY_POLICY');
    const fallthrough = await send(port, { path: '/private' });
    expect(fallthrough.status).toBe(403);
    expect(fallthrough.body).toBe('denied by e2e policy\n');
    expect(upstream.hits.length).toBe(before);
  });

  it('skips authorization on the health route (per-route disabled)', async () => {
    const checks = await envoy.stat('http.ingress_http.ext_authz.ok');
    const res = await send(port, { path: '/healthz' });
    // The e2e policy would deny /healthz: reaching upstream proves no Check was made.
    expect(res.status).toBe(200);
    expect(lastHit().url).toBe('/healthz');
    expect(await envoy.stat('http.ingress_http.ext_authz.ok')).toBe(checks);
  });

  it('passes a JSON body to the policy as parsed_body', async () => {
    const ok = await send(port, {
      method: 'POST',
      path: '/orders',
      headers: { 'content-type': 'application/json' },
      body: '{"amount": 42}',
    });
    expect(ok.status).toBe(200);
    expect(lastHit().headers['x-order-amount']).toBe('42');
    expect(lastHit().body).toBe('{"amount": 42}');
    const before = upstream.hits.length;
    const big = await send(port, {
      method: 'POST',
      path: '/orders',
      headers: { 'content-type': 'application/json' },
      body: '{"amount": 500}',
    });
    expect(big.status).toBe(422);
    expect(big.body).toBe('amount too large\n');
    expect(upstream.hits.length).toBe(before);
  });
});

describe('sidecar-grpc: fail closed', () => {
  let upstream: EchoUpstream;
  let verdict: RunningVerdict | undefined;
  let envoy: RunningEnvoy;
  printEnvoyLogsOnFailure(() => [envoy]);

  beforeAll(async () => {
    upstream = await startEchoUpstream();
    verdict = await startE2EVerdict();
    envoy = await startSidecarEnvoy(verdict, upstream);
  });
  afterAll(async () => {
    await envoy?.stop();
    await verdict?.stop();
    await upstream?.stop();
  });

  it('denies while verdict is down and recovers when it returns on the same port', async () => {
    const port = envoy.listenerPort('ingress_http');
    const grpcPort = verdict!.grpcPort;
    expect((await send(port, { path: '/public/a' })).status).toBe(200);

    await verdict!.stop();
    verdict = undefined;
    const before = upstream.hits.length;
    const down = await send(port, { path: '/public/a' });
    expect(down.status).toBe(403);
    expect(upstream.hits.length).toBe(before);
    expect(await envoy.stat('http.ingress_http.ext_authz.error')).toBeGreaterThan(0);

    verdict = await startE2EVerdict([`server.grpc.port=${grpcPort}`]);
    // Envoy reconnects on its own; poll the condition with a deadline.
    const deadline = Date.now() + 10_000;
    let status = 0;
    while (status !== 200 && Date.now() < deadline) status = (await send(port, { path: '/public/a' })).status;
    expect(status).toBe(200);
  });
});
