import type { ClientHttp2Session, ClientHttp2Stream } from 'node:http2';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningVerdict } from '../../src/main';
import { GrpcStatus } from '../../src/server/grpc-status';
import { CHECK_PATH, connectRaw, encodeCheckRequest, grpcHeaders, lpm, rawCall } from '../helpers/grpc-raw-client';
import { httpCheckRequest, startTestVerdict } from '../helpers/verdict-harness';

// A full GC on demand, so that what the server still holds is measured, not guessed.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const WATCH_PATH = '/grpc.health.v1.Health/Watch';

/** HealthCheckRequest { string service = 1 } naming `name`. */
function healthRequest(name: Buffer): Buffer {
  const len: number[] = [];
  for (let n = name.length; ; n >>>= 7) {
    if (n < 0x80) {
      len.push(n);
      break;
    }
    len.push((n & 0x7f) | 0x80);
  }
  return Buffer.concat([Buffer.from([0x0a, ...len]), name]);
}

/** Opens a Watch of `name`; resolves with its first message (prefix included) and the still-open stream. */
function openWatch(session: ClientHttp2Session, name: Buffer): Promise<{ first: Buffer; stream: ClientHttp2Stream }> {
  const stream = session.request(grpcHeaders(WATCH_PATH));
  stream.end(lpm(healthRequest(name)));
  return new Promise((resolve, reject) => stream.once('data', (first: Buffer) => resolve({ first, stream })).once('error', reject));
}

const STREAMS = 100;
const NAME_BYTES = 512 * 1024;
/** The first Watch message for an unknown name: prefix, then { status = SERVICE_UNKNOWN (3) }. */
const SERVICE_UNKNOWN = '00000000020803';

/**
 * grpc.health.v1.Health/Watch keeps the call open and streams the status. A caller could open
 * maxConcurrentStreams Watches per connection, each naming a different unknown service of up to
 * limits.maxRequestBytes: the server runs in this process, so its heap is this test's.
 */
describe('Health Watch: unknown service names sent by a caller are not kept', () => {
  let verdict: RunningVerdict;
  let session: ClientHttp2Session;

  beforeAll(async () => {
    verdict = await startTestVerdict();
    session = connectRaw(`http://127.0.0.1:${verdict.grpcPort}`);
  });
  afterAll(async () => {
    session?.destroy();
    await verdict?.stop();
  });

  it(`${STREAMS} open Watches of distinct ${NAME_BYTES / 1024} KiB names each get SERVICE_UNKNOWN and hold well under their names' size`, async () => {
    gc();
    const before = process.memoryUsage().heapUsed;
    const watches = await Promise.all(
      Array.from({ length: STREAMS }, (_, i) => {
        const name = Buffer.alloc(NAME_BYTES, 'a');
        name.write(String(i));
        return openWatch(session, name);
      }),
    );
    expect(watches.map((w) => w.first.toString('hex'))).toEqual(Array(STREAMS).fill(SERVICE_UNKNOWN));
    gc();
    const held = process.memoryUsage().heapUsed - before;
    // The names are 50 MiB in all; what is held is the open streams (and this client's side of them).
    expect(held).toBeLessThan((STREAMS * NAME_BYTES) / 10);
    expect(watches.every((w) => !w.stream.closed)).toBe(true); // the calls stay open, as the health protocol says
  });
});

describe('server.transport.maxOpenCalls bounds the calls open at once across connections', () => {
  let verdict: RunningVerdict;
  let sessions: ClientHttp2Session[];
  const check = lpm(encodeCheckRequest(httpCheckRequest({ path: '/healthz' })));

  beforeAll(async () => {
    verdict = await startTestVerdict(['server.transport.maxOpenCalls=3']);
    sessions = [0, 1].map(() => connectRaw(`http://127.0.0.1:${verdict.grpcPort}`));
  });
  afterAll(async () => {
    for (const s of sessions ?? []) s.destroy();
    await verdict?.stop();
  });

  it('a call past the bound is RESOURCE_EXHAUSTED (ERR_GRPC_BUSY) as Trailers-Only; a stream closing frees its place', async () => {
    // Two Watches on one connection and a Check whose message never ends on the other: three open calls.
    const watches = await Promise.all([openWatch(sessions[0]!, Buffer.from('')), openWatch(sessions[0]!, Buffer.from('x'))]);
    let stalled: ClientHttp2Stream | undefined;
    const stalledAnswer = rawCall(sessions[1]!, grpcHeaders(CHECK_PATH), (s) => {
      stalled = s;
      s.write(check.subarray(0, 10));
    });
    // The fourth, on either connection, is refused before any state is kept for it.
    for (const session of sessions) {
      const busy = await rawCall(session, grpcHeaders(CHECK_PATH), (s) => s.end(check));
      expect(busy).toMatchObject({ grpcStatus: GrpcStatus.RESOURCE_EXHAUSTED, grpcMessage: 'ERR_GRPC_BUSY', trailersOnly: true });
    }
    // No decision was made for them: they are counted as transport refusals.
    const text = await (await fetch(`http://127.0.0.1:${verdict.httpPort}/metrics`)).text();
    expect(text).toContain('verdict_transport_refusals_total{listener="grpc",code="ERR_GRPC_BUSY"} 2');
    // A Watch cancelled by its client frees its place: the next Check is answered.
    watches[0].stream.close();
    await new Promise((resolve) => watches[0].stream.once('close', resolve));
    let answered = await rawCall(sessions[1]!, grpcHeaders(CHECK_PATH), (s) => s.end(check));
    for (let tries = 0; answered.grpcStatus === GrpcStatus.RESOURCE_EXHAUSTED && tries < 50; tries++) {
      // The server learns of the reset when its RST_STREAM arrives; each refused call is a round trip.
      answered = await rawCall(sessions[1]!, grpcHeaders(CHECK_PATH), (s) => s.end(check));
    }
    expect(answered.grpcStatus).toBe(GrpcStatus.OK);
    // The stalled Check, once its message ends, is answered too: it held its place all along.
    stalled?.end(check.subarray(10));
    expect((await stalledAnswer).grpcStatus).toBe(GrpcStatus.OK);
    expect(watches[1].stream.closed).toBe(false);
  });
});

describe('server.transport.maxOpenCalls counts a call until its stream closes', () => {
  let verdict: RunningVerdict;
  let session: ClientHttp2Session;
  const check = lpm(encodeCheckRequest(httpCheckRequest({ path: '/healthz' })));

  beforeAll(async () => {
    verdict = await startTestVerdict(['server.transport.maxOpenCalls=3']);
    session = connectRaw(`http://127.0.0.1:${verdict.grpcPort}`);
  });
  afterAll(async () => {
    session?.destroy();
    await verdict?.stop();
  });

  it("an answered call whose answer the client's flow control holds back keeps its place until its stream closes", async () => {
    // A client that grants no flow-control window: the answer's HEADERS go out, its DATA never can.
    const stingy = connectRaw(`http://127.0.0.1:${verdict.grpcPort}`);
    stingy.settings({ initialWindowSize: 0 });
    const held = stingy.request(grpcHeaders(CHECK_PATH));
    const headersOut = new Promise((resolve) => held.once('response', resolve));
    held.on('error', () => undefined);
    held.end(check);
    await headersOut; // answered: the decision is made, the stream is not over
    // Three places: the held stream and two open Watches; a Check then is refused.
    const watches = await Promise.all([openWatch(session, Buffer.from('')), openWatch(session, Buffer.from('x'))]);
    const busy = await rawCall(session, grpcHeaders(CHECK_PATH), (s) => s.end(check));
    expect(busy.grpcMessage).toBe('ERR_GRPC_BUSY');
    stingy.destroy();
    let answered = await rawCall(session, grpcHeaders(CHECK_PATH), (s) => s.end(check));
    for (let tries = 0; answered.grpcStatus === GrpcStatus.RESOURCE_EXHAUSTED && tries < 50; tries++)
      answered = await rawCall(session, grpcHeaders(CHECK_PATH), (s) => s.end(check));
    expect(answered.grpcStatus).toBe(GrpcStatus.OK);
    for (const w of watches) w.stream.close();
  });
});
