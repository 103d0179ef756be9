import * as grpc from '@grpc/grpc-js';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { VerdictError } from '../../../src/errors';
import {
  DelegatedIdentityClient,
  loadDelegatedIdentityClientConstructor,
  type DelegatedX509SVID,
} from '../../../src/identity/delegated-identity-client';
import { tempDir } from '../../helpers/verdict-harness';

/**
 * Answers a real SPIRE agent cannot be made to give on demand: updates that do not parse, arbitrary gRPC
 * statuses, an oversized status detail. A minimal DelegatedIdentity server on a Unix socket sends them (the
 * agent's real answers, refusal included, are tested in test/integration/kernel-telemetry-delegated-identity.test.ts).
 */
const servers: grpc.Server[] = [];
const clients: DelegatedIdentityClient[] = [];

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  for (const s of servers.splice(0)) s.forceShutdown();
});

const FUTURE_S = String(Math.floor(Date.now() / 1000) + 3600);
const svid = (trust_domain: string, path: string, expires_at = FUTURE_S): object => ({
  x509_svid: { id: { trust_domain, path }, expires_at },
});

/** What the fake agent does for a subscription, by the PID asked for. */
const SCRIPT: Record<number, (call: grpc.ServerWritableStream<{ pid: number }, object>) => void> = {
  1: (call) => call.write({ x509_svids: [svid('example.org', '/a'), svid('example.org', '/b')] }),
  2: (call) => call.write({ x509_svids: [svid('Example.org', '/a')] }),
  3: (call) => call.write({ x509_svids: [{ x509_svid: { expires_at: FUTURE_S } }] }),
  4: (call) => call.write({ x509_svids: [svid('example.org', '/a', '0')] }),
  5: (call) => call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'agent busy' }),
  6: (call) => call.end(),
  7: (call) => call.emit('error', { code: grpc.status.PERMISSION_DENIED, details: 'x'.repeat(10_000) }),
};

async function fakeAgent(): Promise<{ socket: string; cancelled: number[] }> {
  const socket = join(tempDir('verdict-delegated-'), 'admin.sock');
  const cancelled: number[] = [];
  const server = new grpc.Server();
  server.addService(loadDelegatedIdentityClientConstructor().service, {
    SubscribeToX509SVIDs: (call: grpc.ServerWritableStream<{ pid: number }, object>) => {
      call.on('cancelled', () => cancelled.push(call.request.pid));
      SCRIPT[call.request.pid]?.(call);
    },
  });
  await new Promise<void>((res, rej) =>
    server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())),
  );
  servers.push(server);
  return { socket, cancelled };
}

function subscribe(socket: string, pid: number): Promise<{ update: DelegatedX509SVID[] } | { down: VerdictError }> {
  const c = new DelegatedIdentityClient({ socket, reconnectInitialMs: 50, reconnectMaxMs: 200 });
  clients.push(c);
  return new Promise((resolve) => {
    c.subscribeX509SVIDs(pid, { update: (u) => resolve({ update: u }), down: (e) => resolve({ down: e }) });
  });
}

describe('Delegated Identity API client', () => {
  it('hands over each SVID as its SPIFFE ID and expiry only', async () => {
    const { socket } = await fakeAgent();
    const r = await subscribe(socket, 1);
    const expiresAtMs = Number(FUTURE_S) * 1000;
    expect(r).toEqual({
      update: [
        { spiffeId: 'spiffe://example.org/a', expiresAtMs },
        { spiffeId: 'spiffe://example.org/b', expiresAtMs },
      ],
    });
  });

  it.each([
    { pid: 2, what: 'an invalid trust domain', detail: /not a SPIFFE ID/ },
    { pid: 3, what: 'an SVID without an ID', detail: /without an ID/ },
    { pid: 4, what: 'an expiry of 0', detail: /expiry 0/ },
  ])('an update with $what is ERR_DELEGATED_IDENTITY_MALFORMED and the stream is cancelled', async ({ pid, detail }) => {
    const agent = await fakeAgent();
    const r = await subscribe(agent.socket, pid);
    expect(r).toMatchObject({ down: { code: 'ERR_DELEGATED_IDENTITY_MALFORMED', message: expect.stringMatching(detail) } });
    // The client cancelled its side: the agent sees the subscription end.
    await expect.poll(() => agent.cancelled).toContain(pid);
  });

  it('any other status, or the agent ending the stream, is ERR_DELEGATED_IDENTITY_STREAM with the status named', async () => {
    const { socket } = await fakeAgent();
    expect(await subscribe(socket, 5)).toMatchObject({
      down: { code: 'ERR_DELEGATED_IDENTITY_STREAM', message: 'UNAVAILABLE: agent busy' },
    });
    expect(await subscribe(socket, 6)).toMatchObject({
      down: { code: 'ERR_DELEGATED_IDENTITY_STREAM', message: 'the agent ended the stream' },
    });
  });

  it('PERMISSION_DENIED is ERR_DELEGATED_IDENTITY_REFUSED, its detail cut to a bounded length', async () => {
    const { socket } = await fakeAgent();
    const r = (await subscribe(socket, 7)) as { down: VerdictError };
    expect(r.down.code).toBe('ERR_DELEGATED_IDENTITY_REFUSED');
    expect(r.down.message.startsWith('PERMISSION_DENIED: xxx')).toBe(true);
    expect(r.down.message.length).toBeLessThanOrEqual('PERMISSION_DENIED: '.length + 200);
  });

  it('a socket nobody serves is ERR_DELEGATED_IDENTITY_STREAM (UNAVAILABLE)', async () => {
    const r = await subscribe(join(tempDir('verdict-delegated-'), 'absent.sock'), 1);
    expect(r).toMatchObject({ down: { code: 'ERR_DELEGATED_IDENTITY_STREAM', message: expect.stringMatching(/^UNAVAILABLE: /) } });
  });
});
