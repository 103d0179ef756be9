import { once } from 'node:events';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { RunningVerdict } from '../../src/main';
import { parseMetrics } from '../helpers/kernel-telemetry-fixtures';
import { CHECK_PATH, connectRaw, encodeCheckRequest, grpcHeaders, lpm, rawCall } from '../helpers/grpc-raw-client';
import { httpCheckRequest, startTestVerdict } from '../helpers/verdict-harness';
import { waitFor } from '../helpers/wait-for';

// What one client can hold on verdict's listeners: descriptors (a bound on connections per listener) and
// time (a connection that never completes its handshake, a request that never completes its headers).
// Each test holds real sockets against a served verdict and waits for the server to close them.

const GOOD = lpm(encodeCheckRequest(httpCheckRequest({ method: 'GET', path: '/healthz' })));

/** A TCP connection that sends nothing (and reads, so that it sees the server's FIN); resolves once connected. */
async function idleSocket(port: number): Promise<Socket> {
  const s = connect(port, '127.0.0.1');
  s.on('error', () => undefined);
  s.resume();
  await once(s, 'connect');
  return s;
}

/** Resolves when the peer closes `s` (this side never ends it). */
const closedByServer = (s: Socket): Promise<unknown> => once(s, 'close');

/** Read in-process: the ops listener may be the one that is full. */
async function droppedOn(verdict: RunningVerdict, listener: string): Promise<number | undefined> {
  return parseMetrics(await verdict.metrics.registry.metrics()).get(`verdict_connections_dropped_total{listener="${listener}"}`);
}

describe('listener bounds', () => {
  let verdict: RunningVerdict | undefined;
  const sockets: Socket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await verdict?.stop();
    verdict = undefined;
  });

  it('gRPC: a connection that sends no HTTP/2 preface is closed at handshakeTimeoutMs; a settled one keeps serving', async () => {
    verdict = await startTestVerdict(['server.transport.handshakeTimeoutMs=300']);
    const session = connectRaw(`http://127.0.0.1:${verdict.grpcPort}`);
    await once(session, 'remoteSettings');
    const idle = await idleSocket(verdict.grpcPort);
    sockets.push(idle);
    await closedByServer(idle);
    const res = await rawCall(session, grpcHeaders(CHECK_PATH), (s) => s.end(GOOD));
    expect(res.grpcStatus).toBe(0);
    session.close();
  });

  it('gRPC: past server.transport.maxConnections a new connection is closed as accepted and counted; the open ones serve', async () => {
    verdict = await startTestVerdict(['server.transport.maxConnections=2']);
    const session = connectRaw(`http://127.0.0.1:${verdict.grpcPort}`);
    expect((await rawCall(session, grpcHeaders(CHECK_PATH), (s) => s.end(GOOD))).grpcStatus).toBe(0);
    const second = await idleSocket(verdict.grpcPort);
    const third = await idleSocket(verdict.grpcPort);
    sockets.push(second, third);
    await closedByServer(third);
    expect(second.destroyed).toBe(false);
    expect(await droppedOn(verdict, 'grpc')).toBe(1);
    expect((await rawCall(session, grpcHeaders(CHECK_PATH), (s) => s.end(GOOD))).grpcStatus).toBe(0);
    session.close();
  });

  it('HTTP authz: past httpAuthz.maxConnections a new connection is closed as accepted and counted', async () => {
    verdict = await startTestVerdict(['httpAuthz.port=0', 'httpAuthz.maxConnections=1']);
    const port = verdict.httpAuthzPort as number;
    const first = await idleSocket(port);
    const second = await idleSocket(port);
    sockets.push(first, second);
    await closedByServer(second);
    expect(first.destroyed).toBe(false);
    expect(await droppedOn(verdict, 'http')).toBe(1);
  });

  it('HTTP authz: more than 2,000 header lines (node:http keeps 2,000 by default) still meet limits.maxHeaders', async () => {
    verdict = await startTestVerdict(['httpAuthz.port=0', 'limits.maxHeaders=2050']);
    // 2,100 distinct two- and three-character names fit in node's 16 KiB header block.
    const headers = Object.fromEntries(Array.from({ length: 2100 }, (_, i) => [`h${i.toString(36)}`, '1']));
    const res = await new Promise<{ status: number; reason: string | undefined }>((resolve, reject) => {
      const req = request({ port: verdict?.httpAuthzPort as number, host: '127.0.0.1', path: '/', headers }, (r) => {
        r.resume();
        resolve({ status: r.statusCode as number, reason: r.headers['x-verdict-reason'] as string | undefined });
      });
      req.on('error', reject);
      req.end();
    });
    expect(res.reason).toBe('ERR_REQUEST_TOO_MANY_HEADERS');
  });

  it('ops listener: a connection that sends no request is closed within its 5 s header deadline', async () => {
    verdict = await startTestVerdict();
    const idle = await idleSocket(verdict.httpPort as number);
    sockets.push(idle);
    await closedByServer(idle);
    const res = await fetch(`http://127.0.0.1:${verdict.httpPort}/healthz`);
    expect(res.status).toBe(200);
  }, 20_000);

  it('ops listener: past its 256 connections a new one is closed as accepted and counted', async () => {
    verdict = await startTestVerdict();
    const port = verdict.httpPort as number;
    const held = await Promise.all(Array.from({ length: 256 }, () => idleSocket(port)));
    const extra = await idleSocket(port);
    sockets.push(...held, extra);
    await closedByServer(extra);
    expect(held.every((s) => !s.destroyed)).toBe(true);
    expect(await droppedOn(verdict, 'ops')).toBe(1);
  });
});

describe('ops listener: a client that stopped reading its answers', () => {
  let verdict: RunningVerdict | undefined;
  afterAll(async () => {
    await verdict?.stop();
  });

  it('loses its connection once nothing has moved on it for 10 s (within 20 s), counted ERR_CONNECTION_STALLED', async () => {
    verdict = await startTestVerdict();
    const v = verdict;
    // /metrics answers pipelined and never read fill both socket buffers; node:http then stops reading.
    const s = connect(v.httpPort as number, '127.0.0.1');
    s.on('error', () => undefined);
    s.pause();
    await once(s, 'connect');
    s.write('GET /metrics HTTP/1.1\r\nhost: ops\r\n\r\n'.repeat(2_000));
    const stalled = async (): Promise<number | undefined> =>
      parseMetrics(await v.metrics.registry.metrics()).get(
        'verdict_transport_refusals_total{listener="ops",code="ERR_CONNECTION_STALLED"}',
      );
    await waitFor(async () => (await stalled()) === 1, 'the stalled ops connection to be closed', 25_000, 100);
    expect((await fetch(`http://127.0.0.1:${v.httpPort}/healthz`)).status).toBe(200);
    s.destroy();
  }, 40_000);
});
