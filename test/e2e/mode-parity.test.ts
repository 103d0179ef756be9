import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningVerdict } from '../../src/main';
import { send, type SendOptions } from '../helpers/envoy-client';
import type { RunningEnvoy } from '../helpers/envoy-process';
import { printEnvoyLogsOnFailure, startE2EVerdict, startEnvoyFor } from '../helpers/envoy-stack';
import { startEchoUpstream, type EchoUpstream } from '../helpers/upstream-echo';

// One verdict serving both protocols; one Envoy per protocol (sidecar-grpc.yaml, http-mode.yaml) in front
// of the same upstream. Every case must come out the same through both.

interface Outcome {
  status: number;
  body: string;
  reachedUpstream: boolean;
  upstream: Record<string, string | undefined>;
  client: Record<string, string | undefined>;
}

const UPSTREAM_HEADERS = ['x-verdict-rule', 'x-order-amount', 'x-secret'];
const CLIENT_HEADERS = ['x-denied-by', 'x-verdict-reason', 'www-authenticate'];

const cases: { name: string; request: SendOptions; expected: Partial<Outcome> }[] = [
  {
    name: 'allow adds and removes upstream headers',
    request: { path: '/public/doc', headers: { 'x-secret': 's3cret' } },
    expected: {
      status: 200,
      reachedUpstream: true,
      upstream: { 'x-verdict-rule': 'public', 'x-order-amount': undefined, 'x-secret': undefined },
    },
  },
  {
    name: 'policy deny with its own status, body and headers',
    request: { path: '/teapot' },
    expected: { status: 409, body: 'no tea here\n', reachedUpstream: false },
  },
  {
    name: 'deny by default',
    request: { method: 'DELETE', path: '/private/1' },
    expected: { status: 403, body: 'denied by e2e policy\n', reachedUpstream: false },
  },
  {
    name: 'deny with 401 and www-authenticate',
    request: { path: '/any', headers: { 'x-token': 'bad' } },
    expected: { status: 401, body: 'who are you?\n', reachedUpstream: false },
  },
  {
    name: 'JSON body allowed through parsed_body',
    request: { method: 'POST', path: '/orders', headers: { 'content-type': 'application/json' }, body: '{"amount":7}' },
    expected: { status: 200, reachedUpstream: true },
  },
  {
    name: 'JSON body refused through parsed_body',
    request: { method: 'POST', path: '/orders', headers: { 'content-type': 'application/json' }, body: '{"amount":700}' },
    expected: { status: 422, body: 'amount too large\n', reachedUpstream: false },
  },
  {
    name: 'invalid JSON body is a request error',
    request: { method: 'POST', path: '/orders', headers: { 'content-type': 'application/json' }, body: '{nope' },
    expected: {
      status: 400,
      reachedUpstream: false,
      client: { 'x-denied-by': undefined, 'x-verdict-reason': 'ERR_REQUEST_BODY_PARSE', 'www-authenticate': undefined },
    },
  },
];

describe('gRPC and HTTP ext_authz protocols decide alike', () => {
  let upstream: EchoUpstream;
  let verdict: RunningVerdict;
  let grpcEnvoy: RunningEnvoy;
  let httpEnvoy: RunningEnvoy;
  printEnvoyLogsOnFailure(() => [grpcEnvoy, httpEnvoy]);

  beforeAll(async () => {
    upstream = await startEchoUpstream();
    verdict = await startE2EVerdict(['httpAuthz.port=0', 'httpAuthz.pathPrefix=/authz']);
    const common = { LISTENER_PORT: 0, APP_PORT: upstream.port, AUTHZ_TIMEOUT: '2s' };
    grpcEnvoy = await startEnvoyFor('sidecar-grpc.yaml', { ...common, VERDICT_PORT: verdict.grpcPort });
    httpEnvoy = await startEnvoyFor('http-mode.yaml', { ...common, VERDICT_HTTP_PORT: verdict.httpAuthzPort ?? -1 });
  });
  afterAll(async () => {
    await grpcEnvoy?.stop();
    await httpEnvoy?.stop();
    await verdict?.stop();
    await upstream?.stop();
  });

  async function outcome(envoy: RunningEnvoy, request: SendOptions): Promise<Outcome> {
    const before = upstream.hits.length;
    const res = await send(envoy.listenerPort('ingress_http'), request);
    const hit = upstream.hits.length > before ? upstream.hits.at(-1) : undefined;
    const pick = (names: string[], from: Record<string, string | string[] | undefined>) =>
      Object.fromEntries(names.map((n) => [n, from[n] === undefined ? undefined : String(from[n])]));
    return {
      status: res.status,
      // An allowed request's body is the upstream echo, which differs per Envoy; compare denials only.
      body: hit ? '' : res.body,
      reachedUpstream: hit !== undefined,
      upstream: hit ? pick(UPSTREAM_HEADERS, hit.headers) : {},
      client: hit ? {} : pick(CLIENT_HEADERS, res.headers),
    };
  }

  it.each(cases)('$name', async ({ request, expected }) => {
    const viaGRPC = await outcome(grpcEnvoy, request);
    const viaHTTP = await outcome(httpEnvoy, request);
    expect(viaGRPC).toMatchObject(expected);
    expect(viaHTTP).toEqual(viaGRPC);
  });

  it('fails closed in HTTP mode too when verdict is unreachable', async () => {
    // A second HTTP-mode Envoy pointed at a port nothing listens on (verdict's stopped authz port).
    const dead = await startEchoUpstream();
    const deadPort = dead.port;
    await dead.stop();
    const orphan = await startEnvoyFor('http-mode.yaml', {
      LISTENER_PORT: 0,
      APP_PORT: upstream.port,
      AUTHZ_TIMEOUT: '2s',
      VERDICT_HTTP_PORT: deadPort,
    });
    try {
      const before = upstream.hits.length;
      const res = await send(orphan.listenerPort('ingress_http'), { path: '/public/doc' });
      expect(res.status).toBe(403);
      expect(upstream.hits.length).toBe(before);
    } finally {
      await orphan.stop();
    }
  });
});
