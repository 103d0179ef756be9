import * as grpc from '@grpc/grpc-js';
import { gzipSync, deflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClientHttp2Session } from 'node:http2';
import type { RunningVerdict } from '../../src/main';
import { CHECK_PATH, connectRaw, decodeCheckResponse, encodeCheckRequest, grpcHeaders, lpm, rawCall } from '../helpers/grpc-raw-client';
import { checkClient, decisionsTotal, headerValue, httpCheckRequest, startTestVerdict, tempDir } from '../helpers/verdict-harness';
import { join } from 'node:path';
import { waitFor } from '../helpers/wait-for';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { runGhz } from '../../loadtest/lib/ghz';
import { runH2load } from '../../loadtest/lib/h2load';
import { packageRoot } from '../../src/package-root';

// Transport conformance of verdict's own gRPC edge (src/server/grpc-server.ts) against grpc/grpc
// doc/PROTOCOL-HTTP2.md, over real sockets: hand-written HTTP/2 frames for what no gRPC library sends, and a
// real grpc-js client for deadlines and health Watch. The default policy allows GET /healthz.

const GOOD = encodeCheckRequest(httpCheckRequest({ method: 'GET', path: '/healthz' }));
const MAX_BYTES = 8192;

function allowed(data: Buffer): boolean {
  const res = decodeCheckResponse(data.subarray(5)) as { status?: { code?: number }; okResponse?: unknown };
  return (res.status?.code ?? 0) === 0 && res.okResponse !== undefined;
}

describe('gRPC transport conformance (PROTOCOL-HTTP2.md)', () => {
  let verdict: RunningVerdict;
  let session: ClientHttp2Session;
  beforeAll(async () => {
    verdict = await startTestVerdict([`limits.maxRequestBytes=${MAX_BYTES}`, 'server.transport.maxBufferedBytes=65536']);
    session = connectRaw(`http://127.0.0.1:${verdict.grpcPort}`);
  });
  afterAll(async () => {
    session.close();
    await verdict.stop();
  });

  it('answers a well-formed unary Check: headers, one message, trailers with grpc-status 0', async () => {
    const res = await rawCall(session, grpcHeaders(CHECK_PATH), (s) => s.end(lpm(GOOD)));
    expect(res.headers[':status']).toBe(200);
    expect(res.headers['content-type']).toBe('application/grpc');
    expect(res.trailersOnly).toBe(false);
    expect(res.grpcStatus).toBe(0);
    expect(res.data.readUInt32BE(1)).toBe(res.data.length - 5);
    expect(allowed(res.data)).toBe(true);
  });

  it('reassembles a message split across one-byte DATA frames', async () => {
    const framed = lpm(GOOD);
    const res = await rawCall(session, grpcHeaders(CHECK_PATH), (s) => {
      for (let i = 0; i < framed.length; i++) s.write(framed.subarray(i, i + 1));
      s.end();
    });
    expect(res.grpcStatus).toBe(0);
    expect(allowed(res.data)).toBe(true);
  });

  it.each([
    { name: 'text/plain', contentType: 'text/plain' },
    { name: 'application/json', contentType: 'application/json' },
    { name: 'grpc-web', contentType: 'application/grpc-web' },
    { name: 'grpc+json (verdict speaks proto)', contentType: 'application/grpc+json' },
  ])('refuses content-type $name with HTTP 415', async ({ contentType }) => {
    const res = await rawCall(session, grpcHeaders(CHECK_PATH, { 'content-type': contentType }), (s) => s.end(lpm(GOOD)));
    expect(res.headers[':status']).toBe(415);
    expect(res.data.length).toBe(0);
  });

  it('accepts application/grpc+proto', async () => {
    const res = await rawCall(session, grpcHeaders(CHECK_PATH, { 'content-type': 'application/grpc+proto' }), (s) => s.end(lpm(GOOD)));
    expect(res.grpcStatus).toBe(0);
  });

  it.each([
    { name: 'unknown service', path: '/no.such.Service/Check' },
    { name: 'unknown method', path: '/envoy.service.auth.v3.Authorization/Report' },
    { name: 'path case differs (paths are case-sensitive)', path: '/envoy.service.auth.v3.authorization/Check' },
    { name: 'reflection is not on the Check port', path: '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo' },
  ])('answers $name with UNIMPLEMENTED, Trailers-Only', async ({ path }) => {
    const res = await rawCall(session, grpcHeaders(path), (s) => s.end(lpm(GOOD)));
    expect(res.headers[':status']).toBe(200);
    expect(res.trailersOnly).toBe(true);
    expect(res.grpcStatus).toBe(grpc.status.UNIMPLEMENTED);
    expect(res.grpcMessage).toBe('ERR_GRPC_UNIMPLEMENTED');
    expect(res.data.length).toBe(0);
  });

  it.each([
    { name: 'zero messages', body: Buffer.alloc(0), code: 'ERR_GRPC_NO_MESSAGE' },
    { name: 'two messages', body: Buffer.concat([lpm(GOOD), lpm(GOOD)]), code: 'ERR_GRPC_TOO_MANY_MESSAGES' },
    { name: 'a stray byte after the message', body: Buffer.concat([lpm(GOOD), Buffer.from([0])]), code: 'ERR_GRPC_TOO_MANY_MESSAGES' },
    { name: 'a truncated prefix (3 of 5 bytes)', body: lpm(GOOD).subarray(0, 3), code: 'ERR_GRPC_TRUNCATED' },
    { name: 'a truncated body', body: lpm(GOOD).subarray(0, 40), code: 'ERR_GRPC_TRUNCATED' },
    { name: 'compressed flag 2', body: lpm(GOOD, 2), code: 'ERR_GRPC_FRAME' },
    { name: 'compressed flag 1 without grpc-encoding', body: lpm(GOOD, 1), code: 'ERR_GRPC_ENCODING' },
  ])('refuses $name with INTERNAL and a stable code', async ({ body, code }) => {
    const res = await rawCall(session, grpcHeaders(CHECK_PATH), (s) => s.end(body));
    expect(res.grpcStatus).toBe(grpc.status.INTERNAL);
    expect(res.grpcMessage).toBe(code);
  });

  it('judges an oversize message from its 5-byte prefix alone: refused before any body byte is sent', async () => {
    // Only the prefix goes out, announcing far more than the hard limit; the stream is never ended.
    const res = await rawCall(session, grpcHeaders(CHECK_PATH), (s) => s.write(lpm(Buffer.alloc(0), 0, 512 * 1024 * 1024)));
    expect(res.grpcStatus).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(res.grpcMessage).toBe('ERR_REQUEST_TOO_LARGE');
  });

  it('denies a message over the limit (within the hard limit) with ERR_REQUEST_TOO_LARGE in a CheckResponse', async () => {
    const big = encodeCheckRequest(httpCheckRequest({ method: 'POST', path: '/healthz', body: 'x'.repeat(MAX_BYTES * 2) }));
    const res = await rawCall(session, grpcHeaders(CHECK_PATH), (s) => s.end(lpm(big)));
    expect(res.grpcStatus).toBe(0);
    const answer = decodeCheckResponse(res.data.subarray(5)) as {
      deniedResponse?: { headers?: { header?: { key?: string; value?: string } }[] };
    };
    expect(headerValue(answer.deniedResponse?.headers, 'x-verdict-reason')).toBe('ERR_REQUEST_TOO_LARGE');
  });

  it.each([
    { name: 'gzip', encoding: 'gzip', body: gzipSync(GOOD) },
    { name: 'deflate', encoding: 'deflate', body: deflateSync(GOOD) },
  ])('decompresses a $name message', async ({ encoding, body }) => {
    const res = await rawCall(session, grpcHeaders(CHECK_PATH, { 'grpc-encoding': encoding }), (s) => s.end(lpm(body, 1)));
    expect(res.grpcStatus).toBe(0);
    expect(allowed(res.data)).toBe(true);
  });

  it.each([
    {
      name: 'an unsupported grpc-encoding',
      headers: { 'grpc-encoding': 'snappy' },
      body: lpm(GOOD, 1),
      status: grpc.status.UNIMPLEMENTED,
      code: 'ERR_GRPC_ENCODING',
    },
    {
      name: 'a gzip bomb (6 MiB of zeros in 6 KiB, over the 4 MiB hard limit)',
      headers: { 'grpc-encoding': 'gzip' },
      body: lpm(gzipSync(Buffer.alloc(6 * 1024 * 1024)), 1),
      status: grpc.status.RESOURCE_EXHAUSTED,
      code: 'ERR_REQUEST_TOO_LARGE',
    },
    {
      name: 'corrupt gzip',
      headers: { 'grpc-encoding': 'gzip' },
      body: lpm(Buffer.from('not gzip at all'), 1),
      status: grpc.status.INTERNAL,
      code: 'ERR_GRPC_ENCODING',
    },
    {
      name: 'a malformed grpc-timeout',
      headers: { 'grpc-timeout': '5 seconds' },
      body: lpm(GOOD),
      status: grpc.status.INTERNAL,
      code: 'ERR_GRPC_TIMEOUT_HEADER',
    },
    {
      name: 'a grpc-timeout of nine digits',
      headers: { 'grpc-timeout': '123456789S' },
      body: lpm(GOOD),
      status: grpc.status.INTERNAL,
      code: 'ERR_GRPC_TIMEOUT_HEADER',
    },
  ])('refuses $name', async ({ headers, body, status, code }) => {
    const res = await rawCall(session, grpcHeaders(CHECK_PATH, headers), (s) => s.end(body));
    expect(res.grpcStatus).toBe(status);
    expect(res.grpcMessage).toBe(code);
    expect(res.headers['grpc-accept-encoding']).toBe('identity,gzip,deflate');
  });

  it('ends a call whose grpc-timeout passes with DEADLINE_EXCEEDED, and the call is cancelled', async () => {
    // Headers and half a message, then nothing: only the deadline can end this call.
    const res = await rawCall(session, grpcHeaders(CHECK_PATH, { 'grpc-timeout': '50m' }), (s) => s.write(lpm(GOOD).subarray(0, 20)));
    expect(res.grpcStatus).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(res.grpcMessage).toBe('ERR_GRPC_DEADLINE');
    expect(res.trailersOnly).toBe(true);
  });

  it('honours a deadline set by a real grpc-js client', async () => {
    const client = new grpc.Client(`127.0.0.1:${verdict.grpcPort}`, grpc.credentials.createInsecure());
    try {
      // A long deadline the answer beats, then one that has already passed when the call starts.
      const ok = await unary(client, CHECK_PATH, GOOD, Date.now() + 10_000);
      expect(ok.code).toBe(grpc.status.OK);
      const late = await unary(client, CHECK_PATH, GOOD, Date.now() - 1);
      expect(late.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    } finally {
      client.close();
    }
  });

  it('survives client resets mid-message and returns their buffer budget (65536 bytes; each call reserves 8000)', async () => {
    // Each reset call reserved its declared length; if a reset leaked it, the budget would run out by call 9.
    const half = lpm(Buffer.alloc(8000, 1)).subarray(0, 4000);
    for (let i = 0; i < 20; i++) {
      const res = await rawCall(session, grpcHeaders(CHECK_PATH), (s) => s.write(half, () => s.close(0x8)));
      expect(res.rstCode).toBe(0x8);
    }
    const after = await rawCall(session, grpcHeaders(CHECK_PATH), (s) => s.end(lpm(GOOD)));
    expect(after.grpcStatus).toBe(0);
  });

  it('refuses a request whose header list exceeds maxHeaderListPairs, and keeps serving the connection', async () => {
    const many: Record<string, string> = {};
    for (let i = 0; i < 300; i++) many[`x-h-${i}`] = 'v';
    const res = await rawCall(session, grpcHeaders(CHECK_PATH, many), (s) => s.end(lpm(GOOD)));
    expect(res.grpcStatus).not.toBe(0);
    const after = await rawCall(session, grpcHeaders(CHECK_PATH), (s) => s.end(lpm(GOOD)));
    expect(after.grpcStatus).toBe(0);
  });
});

describe('real load clients get correct answers', () => {
  let verdict: RunningVerdict;
  beforeAll(async () => {
    verdict = await startTestVerdict();
  });
  afterAll(async () => {
    await verdict.stop();
  });

  const decisions = (): Promise<number> => decisionsTotal(verdict);

  it('ghz (grpc-go): every call OK and decided', async () => {
    const before = await decisions();
    const dataFile = join(packageRoot(), 'test', 'fixtures', 'check-request-api.json');
    const r = await runGhz({ target: `127.0.0.1:${verdict.grpcPort}`, dataFile, rps: 0, total: 400, concurrency: 8, connections: 2 });
    expect(r.errors).toBe(0);
    expect((await decisions()) - before).toBe(400);
  });

  it('h2load (nghttp2): every request answered 200 and decided', async () => {
    const before = await decisions();
    const dataFile = join(tempDir('verdict-h2load-'), 'check.bin');
    writeFileSync(dataFile, lpm(GOOD));
    const r = await runH2load({
      url: `http://127.0.0.1:${verdict.grpcPort}${CHECK_PATH}`,
      dataFile,
      requests: 400,
      clients: 2,
      streams: 4,
      cpu: 1,
    });
    expect(r.failed).toBe(0);
    expect(r.succeeded).toBe(400);
    expect((await decisions()) - before).toBe(400);
  });
});

describe('grpc.health.v1 on the gRPC edge', () => {
  it('answers Check for known services and NOT_FOUND for others; Watch streams SERVING → NOT_SERVING, then ends on shutdown', async () => {
    const verdict = await startTestVerdict();
    const client = new grpc.Client(`127.0.0.1:${verdict.grpcPort}`, grpc.credentials.createInsecure());
    try {
      expect(await unary(client, '/grpc.health.v1.Health/Check', healthRequest('envoy.service.auth.v3.Authorization'))).toMatchObject({
        code: 0,
        body: Buffer.from([0x08, 1]),
      });
      expect((await unary(client, '/grpc.health.v1.Health/Check', healthRequest('nope'))).code).toBe(grpc.status.NOT_FOUND);

      const seen: number[] = [];
      const unknown: number[] = [];
      const ended = watch(client, '', (s) => seen.push(s));
      const endedUnknown = watch(client, 'nope', (s) => unknown.push(s));
      await waitFor(() => seen.length >= 1 && unknown.length >= 1, 'health Watch messages');
      expect(seen).toEqual([1]);
      expect(unknown).toEqual([3]); // SERVICE_UNKNOWN, and the stream stays open
      const stopping = verdict.stop();
      expect(await ended).toBe(grpc.status.UNAVAILABLE);
      expect(await endedUnknown).toBe(grpc.status.UNAVAILABLE);
      expect(seen).toEqual([1, 2]);
      await stopping;
    } finally {
      client.close();
    }
  });
});

describe('GOAWAY and drain on shutdown', () => {
  it('sends GOAWAY, finishes the call in flight, refuses a new one', async () => {
    const verdict = await startTestVerdict();
    const session = connectRaw(`http://127.0.0.1:${verdict.grpcPort}`);
    const goaway = new Promise<void>((resolve) => session.once('goaway', () => resolve()));
    const framed = lpm(GOOD);
    expect((await rawCall(session, grpcHeaders(CHECK_PATH), (s) => s.end(framed))).grpcStatus).toBe(0);
    let finish: () => void = () => undefined;
    const inFlight = rawCall(session, grpcHeaders(CHECK_PATH), (s) => {
      s.write(framed.subarray(0, 10));
      finish = () => s.end(framed.subarray(10));
    });
    // Frames are processed in order: once the PING is acknowledged, the server has the call's HEADERS.
    await new Promise<void>((resolve, reject) => session.ping((err) => (err ? reject(err) : resolve())));
    const stopped = verdict.stop();
    await goaway;
    finish();
    // No new stream on this connection (the client knows from GOAWAY), and no new connection.
    expect(() => session.request(grpcHeaders(CHECK_PATH))).toThrow(/GOAWAY/);
    const late = connectRaw(`http://127.0.0.1:${verdict.grpcPort}`);
    const lateError = new Promise<string | undefined>((resolve) => late.once('error', (e: NodeJS.ErrnoException) => resolve(e.code)));
    expect(await lateError).toBe('ECONNREFUSED');
    const res = await inFlight;
    expect(res.grpcStatus).toBe(0);
    expect(allowed(res.data)).toBe(true);
    await stopped;
    session.destroy();
  });
});

describe('reflection on its own grpc-js listener', () => {
  it('lists the Authorization service on server.reflectionPort, not on the Check port', async () => {
    const port = await freePort();
    const verdict = await startTestVerdict(['server.reflection=true', `server.reflectionPort=${port}`]);
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    try {
      // ServerReflectionRequest { string list_services = 7 } (empty string: list all)
      const call = client.makeBidiStreamRequest(
        '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo',
        (b: Buffer) => b,
        (b: Buffer) => b,
      );
      const answer = new Promise<Buffer>((resolve, reject) => {
        call.once('data', (b: Buffer) => resolve(b));
        call.once('error', reject);
      });
      call.write(Buffer.from([0x3a, 0x00]));
      expect((await answer).toString('latin1')).toContain('envoy.service.auth.v3.Authorization');
      call.end();
    } finally {
      client.close();
      await verdict.stop();
    }
  });
});

describe('gRPC over a Unix socket', () => {
  it('serves Check on server.grpc.unixSocket', async () => {
    const path = join(tempDir('verdict-uds-'), 'grpc.sock');
    const verdict = await startTestVerdict([`server.grpc.unixSocket=${path}`]);
    const client = checkClient(`unix:${path}`);
    try {
      const res = await client.check(httpCheckRequest({ method: 'GET', path: '/healthz' }));
      expect(res.okResponse).toBeDefined();
    } finally {
      client.close();
      await verdict.stop();
    }
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function healthRequest(service: string): Buffer {
  const name = Buffer.from(service);
  return service === '' ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a, name.length]), name]);
}

function unary(
  client: grpc.Client,
  path: string,
  body: Buffer,
  deadline: number = Date.now() + 10_000,
): Promise<{ code: number; body?: Buffer }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      body,
      { deadline },
      (err, res) => resolve(err ? { code: err.code } : { code: 0, body: res as Buffer }),
    );
  });
}

/** Health Watch: reports each status number; resolves with the final grpc status code. */
function watch(client: grpc.Client, service: string, onStatus: (s: number) => void): Promise<number> {
  return new Promise((resolve) => {
    const call = client.makeServerStreamRequest(
      '/grpc.health.v1.Health/Watch',
      (b: Buffer) => b,
      (b: Buffer) => b,
      healthRequest(service),
    );
    call.on('data', (m: Buffer) => onStatus(m.length === 0 ? 0 : (m[1] as number)));
    call.on('error', (e: grpc.ServiceError) => resolve(e.code));
    call.on('status', (s: grpc.StatusObject) => {
      if (s.code === 0) resolve(0);
    });
  });
}
