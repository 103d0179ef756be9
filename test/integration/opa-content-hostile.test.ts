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

// What an OPA bundle's content can make one evaluation do, over the real gRPC server with a bundle built at
// run time by the real `opa build -t wasm`: each route is one hostile behaviour, and every case ends with
// the plain route still answering, so no hostile evaluation leaves the instance or the server poisoned.

const POLICY = `package envoy.authz
import rego.v1

path := input.attributes.request.http.path
default allow := false

allow := {"allowed": true, "headers": {"x-ok": "yes"}} if path == "/ok"
# Allocates until the instance's memory (policy.maxMemoryPages) is full: opa_malloc fails.
allow := {"allowed": true, "headers": {"x": concat(",", [sprintf("%d", [i]) | some i in numbers.range(0, 100000000)])}} if path == "/oom"
# A header map built from data.json: ~6 MB of CheckResponse.
allow := {"allowed": true, "headers": data.many} if path == "/huge"
allow := "yes" if path == "/string"
allow := {"allowed": true, "headers": {"x-n": 7}} if path == "/number-header"
allow := {"allowed": false, "http_status": 1000} if path == "/status"
allow := {"allowed": true, "headers": {"x-crlf": "a\\r\\nx-injected: 1"}} if path == "/crlf"
`;

// Past server.grpc.maxSendMessageBytes (4 MiB by default): the bound that keeps such a response off the wire.
const many = Object.fromEntries(Array.from({ length: 80_000 }, (_, i) => [`x-h${i}`, `value-${i}-${'v'.repeat(48)}`]));

function reason(res: CheckResponse): string | undefined {
  return headerValue(res.deniedResponse?.headers, 'x-verdict-reason');
}

describe('OPA bundle content that makes one evaluation misbehave (gRPC)', () => {
  let verdict: RunningVerdict;
  let client: CheckClient;

  beforeAll(async () => {
    const bundle = await buildTestBundle({ 'authz.rego': POLICY, 'data.json': JSON.stringify({ many }) });
    verdict = await startTestVerdict([`policy.bundle=${bundle}`, 'cache.enabled=false', 'policy.maxMemoryPages=1024']);
    client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
  }, 120_000);

  afterAll(async () => {
    client?.close();
    await verdict?.stop();
  });

  async function stillServes(): Promise<void> {
    const res = await client.check(httpCheckRequest({ path: '/ok' }));
    expect(headerValue(res.okResponse?.headers, 'x-ok')).toBe('yes');
  }

  it.each([
    { name: 'allocates until out of memory', path: '/oom', code: 'ERR_POLICY_EVAL' },
    { name: 'returns a 6 MB header map', path: '/huge', code: 'ERR_RESPONSE_TOO_LARGE' },
    { name: 'returns allow as a string', path: '/string', code: 'ERR_POLICY_RESULT' },
    { name: 'returns a header value that is a number', path: '/number-header', code: 'ERR_POLICY_RESULT' },
    { name: 'returns a status outside Envoy’s StatusCode', path: '/status', code: 'ERR_POLICY_RESULT' },
    { name: 'returns a header value with CR LF', path: '/crlf', code: 'ERR_POLICY_RESULT' },
  ])('denies an evaluation that $name with $code, then serves the next request', async ({ path, code }) => {
    const res = await client.check(httpCheckRequest({ path }));
    expect(res.status?.code).toBe(7);
    expect(reason(res)).toBe(code);
    await stillServes();
  });
});
