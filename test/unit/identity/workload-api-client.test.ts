import * as grpc from '@grpc/grpc-js';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Clock } from '../../../src/clock';
import type { VerdictError } from '../../../src/errors';
import { WorkloadAPIClient } from '../../../src/identity/workload-api-client';
import { loadWorkloadAPIClientConstructor } from '../../../src/identity/workload-api-protos';
import { createLogger } from '../../../src/telemetry/logger';
import { createCA, createJWTAuthority, type JWTAuthority, type TestCA } from '../../helpers/svid-authority';
import { waitFor } from '../../helpers/spire-harness';
import { tempDir } from '../../helpers/verdict-harness';

/**
 * Faults a real SPIRE agent cannot be made to produce: a malformed bundle update, and a call without the
 * required metadata. A minimal SpiffeWorkloadAPI server on a Unix socket injects them (everything else is
 * tested against real SPIRE in test/integration/spire.test.ts).
 */
let ca: TestCA;
let jwtKey: JWTAuthority;
const servers: grpc.Server[] = [];
const clients: WorkloadAPIClient[] = [];

beforeAll(async () => {
  [ca, jwtKey] = await Promise.all([createCA('example.org'), createJWTAuthority('k1')]);
});

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  for (const s of servers.splice(0)) s.forceShutdown();
});

type Push = (msg: object) => void;

async function fakeAgent(socket: string): Promise<{ pushX509: Push; pushJWT: Push; metadataSeen: string[] }> {
  const server = new grpc.Server();
  const metadataSeen: string[] = [];
  let pushX509: Push = () => undefined;
  let pushJWT: Push = () => undefined;
  const Ctor = loadWorkloadAPIClientConstructor();
  const stream = (set: (p: Push) => void) => (call: grpc.ServerWritableStream<object, object>) => {
    metadataSeen.push(String(call.metadata.get('workload.spiffe.io')[0]));
    set((msg) => call.write(msg));
  };
  server.addService(Ctor.service, {
    FetchX509Bundles: stream((p) => (pushX509 = p)),
    FetchJWTBundles: stream((p) => (pushJWT = p)),
  });
  await new Promise<void>((res, rej) =>
    server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())),
  );
  servers.push(server);
  return { pushX509: (m) => pushX509(m), pushJWT: (m) => pushJWT(m), metadataSeen };
}

function client(socket: string, clock: Clock): WorkloadAPIClient {
  const c = new WorkloadAPIClient({
    socket: `unix://${socket}`,
    clock,
    logger: createLogger('silent'),
    reconnectInitialMs: 50,
    reconnectMaxMs: 200,
    bundleStalenessMs: 1000,
    fetchX509SVID: false,
  });
  clients.push(c);
  c.start();
  return c;
}

function once(c: WorkloadAPIClient, event: string): Promise<unknown> {
  return new Promise((res) => c.once(event, res));
}

const goodJWKS = (): Buffer => Buffer.from(JSON.stringify({ keys: [jwtKey.publicJWK] }));

describe('WorkloadAPIClient (fault injection)', () => {
  it('sends the workload.spiffe.io metadata, becomes ready on the first bundles, and keeps good bundles over a malformed update', async () => {
    const socket = join(tempDir(), 'agent.sock');
    const agent = await fakeAgent(socket);
    let nowMs = 1_000_000;
    const c = client(socket, { nowMs: () => nowMs, monotonicNs: () => process.hrtime.bigint() });
    expect(c.isReady()).toBe(false);
    expect(() => c.bundleForTrustDomain('example.org')).toThrow(expect.objectContaining({ code: 'ERR_BUNDLE_UNAVAILABLE' }) as Error);

    const ready = once(c, 'ready');
    await waitFor('both bundle streams open at the agent', () => agent.metadataSeen.length === 2);
    agent.pushX509({ bundles: { 'example.org': ca.cert.raw } });
    agent.pushJWT({ bundles: { 'example.org': goodJWKS() } });
    expect(await ready).toBe(true);
    expect(agent.metadataSeen).toEqual(['true', 'true']);
    const good = c.bundleForTrustDomain('example.org');
    expect(good?.x509Authorities).toHaveLength(1);
    expect(good?.jwtAuthorities.has('k1')).toBe(true);

    // A malformed update (truncated DER) is refused; the good bundle stays, the same object (caches stay valid).
    const refused: string[] = [];
    const bothRefused = new Promise<void>((res) =>
      c.on('refused', (stream: string) => {
        refused.push(stream);
        if (refused.length === 2) res();
      }),
    );
    agent.pushX509({ bundles: { 'example.org': ca.cert.raw.subarray(0, 40) } });
    agent.pushJWT({ bundles: { 'example.org': Buffer.from('{"keys": [{"kty": "EC"}]}') } });
    await bothRefused;
    expect(refused.sort()).toEqual(['jwtBundles', 'x509Bundles']);
    expect(c.bundleForTrustDomain('example.org')).toBe(good);

    // The agent goes away: stale after bundleStalenessMs of the injected clock → not ready, verification denied.
    for (const s of servers.splice(0)) s.forceShutdown();
    // Each poll moves the injected clock on; once the stream is seen down, the next step makes it stale.
    await waitFor('bundles to go stale', () => {
      nowMs += 600;
      return !c.isReady();
    });
    let code: string | undefined;
    try {
      c.bundleForTrustDomain('example.org');
    } catch (err) {
      code = (err as VerdictError).code;
    }
    expect(code).toBe('ERR_BUNDLE_UNAVAILABLE');
  });
});
