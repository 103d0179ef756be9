import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningVerdict } from '../../src/main';
import { send, type ClientResponse } from '../helpers/envoy-client';
import type { RunningEnvoy } from '../helpers/envoy-process';
import { printEnvoyLogsOnFailure, startE2EVerdict, startSidecarEnvoy } from '../helpers/envoy-stack';
import { startEchoUpstream, type EchoUpstream, type UpstreamHit } from '../helpers/upstream-echo';

// Conformance: every CheckResponse field verdict emits, driven through a real Envoy (sidecar-grpc.yaml),
// checked by what Envoy actually did to the upstream request or the client response.

describe('CheckResponse conformance through Envoy', () => {
  let upstream: EchoUpstream;
  let verdict: RunningVerdict;
  let envoy: RunningEnvoy;
  let allowed: { res: ClientResponse; hit: UpstreamHit };
  let denied: { res: ClientResponse; upstreamHits: number };
  printEnvoyLogsOnFailure(() => [envoy]);

  beforeAll(async () => {
    upstream = await startEchoUpstream();
    verdict = await startE2EVerdict();
    envoy = await startSidecarEnvoy(verdict, upstream);
    const port = envoy.listenerPort('ingress_http');
    const res = await send(port, {
      path: '/conformance?debug=1&keep=2',
      headers: { 'x-token': 'good', 'x-verdict-user': 'mallory', 'x-secret': 's3cret', 'x-authz-user': 'forged' },
    });
    const hit = upstream.hits.at(-1);
    if (!hit) throw new Error(`allowed request did not reach upstream (status ${res.status}: ${res.body})`);
    allowed = { res, hit };
    const before = upstream.hits.length;
    denied = {
      res: await send(port, { path: '/conformance', headers: { 'x-token': 'bad' } }),
      upstreamHits: upstream.hits.length - before,
    };
  });
  afterAll(async () => {
    await envoy?.stop();
    await verdict?.stop();
    await upstream?.stop();
  });

  /** Repeated header lines as the upstream received them, in order. */
  function upstreamValues(name: string): string[] {
    const raw = allowed.hit.rawHeaders;
    const out: string[] = [];
    for (let i = 0; i < raw.length; i += 2) if (raw[i]?.toLowerCase() === name) out.push(raw[i + 1] ?? '');
    return out;
  }

  const cases: { name: string; check: () => void }[] = [
    { name: 'allow reaches upstream with 200', check: () => expect(allowed.res.status).toBe(200) },
    {
      name: 'OkHttpResponse.headers OVERWRITE_IF_EXISTS_OR_ADD replaces the client value',
      check: () => expect(upstreamValues('x-verdict-user')).toEqual(['alice']),
    },
    {
      // Envoy's ext_authz reads the legacy `append` flag on OkHttpResponse.headers: verdict sends the first
      // value with append false (replace) and later ones with append true, which Envoy joins with ",".
      name: 'OkHttpResponse.headers with a repeated key: every value reaches upstream',
      check: () => expect(upstreamValues('x-multi')).toEqual(['a,b']),
    },
    {
      name: 'response_headers_to_add APPEND_IF_EXISTS_OR_ADD adds beside the upstream response header',
      check: () => expect(allowed.res.headers['x-upstream']).toBe('echo, policy'),
    },
    { name: 'OkHttpResponse.headers_to_remove drops the header', check: () => expect(allowed.hit.headers['x-secret']).toBeUndefined() },
    {
      name: 'OkHttpResponse.response_headers_to_add reaches the client',
      check: () => expect(allowed.res.headers['x-decided-by']).toBe('verdict'),
    },
    {
      name: 'OkHttpResponse.query_parameters_to_set and _to_remove rewrite the query',
      check: () => {
        const url = new URL(allowed.hit.url, 'http://x');
        expect(url.pathname).toBe('/conformance');
        expect(url.searchParams.get('tenant')).toBe('t1');
        expect(url.searchParams.get('keep')).toBe('2');
        expect(url.searchParams.has('debug')).toBe(false);
      },
    },
    {
      name: 'dynamic_metadata is visible to later filters (%DYNAMIC_METADATA% in a route header)',
      check: () => expect(upstreamValues('x-authz-user')).toEqual(['alice']),
    },
    { name: 'DeniedHttpResponse.status', check: () => expect(denied.res.status).toBe(401) },
    { name: 'DeniedHttpResponse.body', check: () => expect(denied.res.body).toBe('who are you?\n') },
    {
      name: 'DeniedHttpResponse.headers (policy headers and the reason header)',
      check: () => {
        expect(denied.res.headers['www-authenticate']).toBe('Bearer realm="e2e"');
        expect(denied.res.headers['x-denied-by']).toBe('e2e');
        expect(denied.res.headers['x-verdict-reason']).toBe('DENIED_BY_POLICY');
      },
    },
    { name: 'a deny never reaches upstream', check: () => expect(denied.upstreamHits).toBe(0) },
  ];

  it.each(cases)('$name', ({ check }) => check());
});
