import { once } from 'node:events';
import http2 from 'node:http2';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load-config';
import { reflectionTransportSchema, type ReflectionTransport } from '../../src/config/sections/reflection-transport';
import { ReflectionServer } from '../../src/server/reflection-server';
import { Metrics } from '../../src/telemetry/metrics';
import { FLAG, FRAME, frame, grpcRequestHeaders, rapidResetBurst, rawH2 } from '../helpers/h2-frames';
import { startTestVerdict } from '../helpers/verdict-harness';
import { waitFor } from '../helpers/wait-for';

// The reflection listener's bounds (server.reflectionTransport), each held against real sockets: the
// abusive connection is closed or stops being read, and a well-behaved reflection client on its own
// connection, opened before the abuse, is still answered after it.

const PATH = '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo';
const SYMBOL = 'envoy.service.auth.v3.Authorization';

/** A Length-Prefixed-Message of ServerReflectionRequest { string file_containing_symbol = 4 }. */
function fileContainingSymbol(symbol = SYMBOL): Buffer {
  const body = Buffer.concat([Buffer.from([0x22, symbol.length]), Buffer.from(symbol, 'latin1')]);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(body.length, 1);
  return Buffer.concat([prefix, body]);
}

function request(session: http2.ClientHttp2Session): http2.ClientHttp2Stream {
  return session.request({ ':method': 'POST', ':path': PATH, 'content-type': 'application/grpc', te: 'trailers' });
}

/** One reflection call on `session`: its answer carries the descriptor that defines the symbol. */
async function answered(session: http2.ClientHttp2Session): Promise<void> {
  const stream = request(session);
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once('trailers', resolve));
  stream.end(fileContainingSymbol());
  await once(stream, 'close');
  expect((await trailers)['grpc-status']).toBe('0');
  expect(Buffer.concat(chunks).toString('latin1')).toContain('CheckRequest');
}

function counted(metrics: Metrics, line: string): Promise<boolean> {
  return metrics.registry.metrics().then((text) => text.split('\n').includes(line));
}

describe('reflection listener bounds', () => {
  let server: ReflectionServer | null = null;
  let good: http2.ClientHttp2Session | null = null;
  const metrics = new Metrics();

  async function serve(overrides: Partial<ReflectionTransport> = {}): Promise<number> {
    server = new ReflectionServer('127.0.0.1', 0, reflectionTransportSchema.parse(overrides), metrics);
    const port = await server.start();
    good = http2.connect(`http://127.0.0.1:${port}`);
    good.on('error', () => undefined);
    await answered(good);
    return port;
  }

  afterEach(async () => {
    good?.destroy();
    good = null;
    await server?.stop();
    server = null;
    metrics.registry.resetMetrics();
  });

  it('maxConnections: the connection past the bound is closed as it is accepted and counted', async () => {
    const port = await serve({ maxConnections: 4 });
    const held = await Promise.all(
      Array.from({ length: 3 }, async () => {
        const s = connect(port, '127.0.0.1');
        s.on('error', () => undefined);
        await once(s, 'connect');
        return s;
      }),
    );
    const extra = connect(port, '127.0.0.1');
    extra.on('error', () => undefined);
    await once(extra, 'close');
    expect(await counted(metrics, 'verdict_connections_dropped_total{listener="reflection"} 1')).toBe(true);
    expect(held.every((s) => !s.destroyed)).toBe(true);
    await answered(good as http2.ClientHttp2Session);
    for (const s of held) s.destroy();
  });

  it('maxConcurrentStreams: 10,000 streams opened and never ended on one connection close it', async () => {
    const port = await serve({ maxConcurrentStreams: 16 });
    const c = await rawH2(port);
    const headers = grpcRequestHeaders(PATH);
    const opened: Buffer[] = [];
    for (let i = 0, id = 1; i < 10_000; i++, id += 2) opened.push(frame(FRAME.HEADERS, FLAG.END_HEADERS, id, headers));
    c.write(Buffer.concat(opened));
    const { goawayCodes } = await c.closed;
    // Past SETTINGS_MAX_CONCURRENT_STREAMS each stream is refused; node:http2 ends the session after 100 refusals.
    expect(goawayCodes[0]).toBe(http2.constants.NGHTTP2_INTERNAL_ERROR);
    await answered(good as http2.ClientHttp2Session);
  }, 10_000);

  it('Rapid Reset: 20,000 streams each reset as it opens close the connection, ERR_GRPC_RESET_FLOOD', async () => {
    const port = await serve({ maxUnansweredCalls: 100 });
    const c = await rawH2(port);
    c.write(rapidResetBurst(PATH, 20_000));
    // nghttp2 alone stops reading the connection (and sends GOAWAY) but the socket stayed open.
    await c.closed;
    expect(await counted(metrics, 'verdict_transport_refusals_total{listener="reflection",code="ERR_GRPC_RESET_FLOOD"} 1')).toBe(true);
    await answered(good as http2.ClientHttp2Session);
  });

  it('a client that never reads its answers is no longer read: its requests are left unconsumed', async () => {
    const port = await serve();
    // A raw connection that grants the server no window beyond the first 64 KiB of answers (two of them),
    // and counts the window the server gives back for what it has read of the stream.
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    await once(socket, 'connect');
    let returned = 0;
    let pings = 0;
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 9) {
        const len = pending.readUIntBE(0, 3);
        if (pending.length < 9 + len) break;
        if (pending[3] === FRAME.WINDOW_UPDATE && pending.readUInt32BE(5) === 1) returned += pending.readUInt32BE(9);
        if (pending[3] === FRAME.PING && (pending[4] ?? 0) & FLAG.ACK) pings++;
        pending = pending.subarray(9 + len);
      }
    });
    // 1,500 requests (63,000 bytes: within the stream's 65,535-byte receive window), then a PING.
    const requests = Buffer.concat(Array.from({ length: 1500 }, () => fileContainingSymbol()));
    socket.write(
      Buffer.concat([
        Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'),
        frame(FRAME.SETTINGS, 0, 0),
        frame(FRAME.HEADERS, FLAG.END_HEADERS, 1, grpcRequestHeaders(PATH)),
        frame(FRAME.DATA, 0, 1, requests.subarray(0, 16_000)),
        frame(FRAME.DATA, 0, 1, requests.subarray(16_000, 32_000)),
        frame(FRAME.DATA, 0, 1, requests.subarray(32_000, 48_000)),
        frame(FRAME.DATA, 0, 1, requests.subarray(48_000)),
        frame(FRAME.PING, 0, 0, Buffer.alloc(8)),
      ]),
    );
    await waitFor(() => pings === 1, 'the PING ack');
    // A call on another connection, then a second PING round trip: the server's loop has run past the data.
    await answered(good as http2.ClientHttp2Session);
    socket.write(frame(FRAME.PING, 0, 0, Buffer.alloc(8)));
    await waitFor(() => pings === 2, 'the second PING ack');
    // Without the bound the server read all 1,500 (giving their window back) and queued 1,500 answers: at
    // 200,000 requests, +66 MiB of heap. With it, it read three and holds the rest unread.
    expect(returned).toBe(0);
    socket.destroy();
  });

  it('maxConnectionAgeMs: a connection holding a stream never ended and never read gets GOAWAY, then is closed', async () => {
    const port = await serve({ maxConnectionAgeMs: 300, maxConnectionAgeGraceMs: 200 });
    const c = await rawH2(port, true);
    c.write(frame(FRAME.HEADERS, FLAG.END_HEADERS, 1, grpcRequestHeaders(PATH)));
    const { goawayCodes } = await c.closed;
    expect(goawayCodes[0]).toBe(http2.constants.NGHTTP2_NO_ERROR);
  }, 10_000);

  it('idleTimeoutMs: a connection that never sends a byte is closed', async () => {
    const port = await serve({ idleTimeoutMs: 300 });
    const silent = connect(port, '127.0.0.1');
    silent.on('error', () => undefined);
    await new Promise((resolve) => silent.once('close', resolve));
  }, 10_000);

  it('idleTimeoutMs: a connection whose client stopped reading its answers is closed, ERR_CONNECTION_STALLED', async () => {
    const port = await serve({ idleTimeoutMs: 300 });
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => undefined);
    const closed = new Promise((resolve) => session.once('close', resolve));
    const stream = request(session);
    stream.on('error', () => undefined);
    // Never read: two answers fill the stream's 64 KiB window, the third waits, and nothing moves.
    stream.pause();
    stream.write(Buffer.concat(Array.from({ length: 10 }, () => fileContainingSymbol())));
    await closed;
    expect(await counted(metrics, 'verdict_transport_refusals_total{listener="reflection",code="ERR_CONNECTION_STALLED"} 1')).toBe(true);
    // The good connection was idle as long, and went too (not counted: it held no call); a new one is answered.
    const again = http2.connect(`http://127.0.0.1:${port}`);
    await answered(again);
    again.destroy();
  }, 10_000);

  it('stop() returns while a client holds a stream open (within maxConnectionAgeGraceMs)', async () => {
    const port = await serve({ maxConnectionAgeGraceMs: 200 });
    const c = await rawH2(port);
    c.write(frame(FRAME.HEADERS, FLAG.END_HEADERS, 1, grpcRequestHeaders(PATH)));
    await answered(good as http2.ClientHttp2Session); // the open stream has reached the server by now
    await server?.stop();
    server = null;
    await c.closed;
  }, 10_000);
});

describe('server.reflectionTransport in the config', () => {
  it('reaches the served listener: its connection past maxConnections is dropped, counted in /metrics', async () => {
    const probe = await new Promise<number>((resolve) => {
      const s = http2.createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address() as { port: number };
        s.close(() => resolve(port));
      });
    });
    const verdict = await startTestVerdict([
      'server.reflection=true',
      `server.reflectionPort=${probe}`,
      'server.reflectionTransport.maxConnections=1',
    ]);
    const first = http2.connect(`http://127.0.0.1:${probe}`);
    try {
      await answered(first);
      const second = connect(probe, '127.0.0.1');
      second.on('error', () => undefined);
      await once(second, 'close');
      const text = await (await fetch(`http://127.0.0.1:${verdict.httpPort}/metrics`)).text();
      expect(text).toContain('verdict_connections_dropped_total{listener="reflection"} 1');
      await answered(first);
    } finally {
      first.destroy();
      await verdict.stop();
    }
  });

  it.each([
    ['maxConnections', 0],
    ['maxConcurrentStreams', 0],
    ['maxSessionMemoryMb', 0],
    ['maxConnectionAgeMs', 99],
    ['idleTimeoutMs', 99],
    ['maxUnansweredCalls', 0],
  ])('refuses server.reflectionTransport.%s=%d with ERR_CONFIG', (key, value) => {
    expect(() => loadConfig({ overrides: [`server.reflectionTransport.${key}=${value}`] })).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG' }),
    );
  });
});
