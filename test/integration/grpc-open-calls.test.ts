import { once } from 'node:events';
import http2, { type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningVerdict } from '../../src/main';
import { GrpcStatus } from '../../src/server/grpc-status';
import { CHECK_PATH, connectRaw, encodeCheckRequest, grpcHeaders, lpm, rawCall, type RawAnswer } from '../helpers/grpc-raw-client';
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
/** The first Watch message for '' while serving: prefix, then { status = SERVING (1) }. */
const SERVING = '00000000020801';

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

/** A Check whose message never ends (no grpc-timeout): the call stays open, waiting for the rest. */
function stalledCheck(session: ClientHttp2Session, check: Buffer): { stream: Promise<ClientHttp2Stream>; answer: Promise<RawAnswer> } {
  let opened!: (s: ClientHttp2Stream) => void;
  const stream = new Promise<ClientHttp2Stream>((resolve) => (opened = resolve));
  const answer = rawCall(session, grpcHeaders(CHECK_PATH), (s) => {
    s.write(check.subarray(0, 10));
    opened(s);
  });
  return { stream, answer };
}

/** A PING answered: the server has read every frame sent before it (a stream it opened is counted). */
async function roundTrip(session: ClientHttp2Session): Promise<void> {
  // A PING sent before the session is connected is cancelled, not queued.
  if (session.connecting) await once(session, 'connect');
  await new Promise<void>((resolve, reject) => session.ping((err) => (err ? reject(err) : resolve())));
}

/** A Check answered on `session`, retried while the server has not yet seen a freed place (a round trip each). */
async function answeredOnceFree(session: ClientHttp2Session, check: Buffer): Promise<RawAnswer> {
  let answered = await rawCall(session, grpcHeaders(CHECK_PATH), (s) => s.end(check));
  for (let tries = 0; answered.grpcStatus === GrpcStatus.RESOURCE_EXHAUSTED && tries < 50; tries++)
    answered = await rawCall(session, grpcHeaders(CHECK_PATH), (s) => s.end(check));
  return answered;
}

async function metricsText(verdict: RunningVerdict): Promise<string> {
  return (await fetch(`http://127.0.0.1:${verdict.httpPort}/metrics`)).text();
}

describe('server.transport.maxOpenCalls bounds the unary calls open at once across connections', () => {
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
    // Three Checks whose messages never end, over both connections: three open calls.
    const stalled = [stalledCheck(sessions[0]!, check), stalledCheck(sessions[0]!, check), stalledCheck(sessions[1]!, check)];
    const streams = await Promise.all(stalled.map((c) => c.stream));
    for (const session of sessions) await roundTrip(session);
    // The fourth, on either connection, is refused before any state is kept for it.
    for (const session of sessions) {
      const busy = await rawCall(session, grpcHeaders(CHECK_PATH), (s) => s.end(check));
      expect(busy).toMatchObject({ grpcStatus: GrpcStatus.RESOURCE_EXHAUSTED, grpcMessage: 'ERR_GRPC_BUSY', trailersOnly: true });
    }
    // No decision was made for them: they are counted as transport refusals.
    expect(await metricsText(verdict)).toContain('verdict_transport_refusals_total{listener="grpc",code="ERR_GRPC_BUSY"} 2');
    // A call cancelled by its client frees its place: the next Check is answered.
    streams[0]!.close();
    await new Promise((resolve) => streams[0]!.once('close', resolve));
    expect((await answeredOnceFree(sessions[1]!, check)).grpcStatus).toBe(GrpcStatus.OK);
    // A stalled Check, once its message ends, is answered too: it held its place all along.
    streams[2]!.end(check.subarray(10));
    expect((await stalled[2]!.answer).grpcStatus).toBe(GrpcStatus.OK);
    expect(streams[1]!.closed).toBe(false);
    streams[1]!.close();
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
    // Three places: the held stream and two stalled Checks; a Check then is refused.
    const stalled = await Promise.all([stalledCheck(session, check).stream, stalledCheck(session, check).stream]);
    await roundTrip(session);
    const busy = await rawCall(session, grpcHeaders(CHECK_PATH), (s) => s.end(check));
    expect(busy.grpcMessage).toBe('ERR_GRPC_BUSY');
    stingy.destroy();
    expect((await answeredOnceFree(session, check)).grpcStatus).toBe(GrpcStatus.OK);
    for (const s of stalled) s.close();
  });
});

describe('server.transport.maxHealthWatches bounds Watches apart from the unary calls', () => {
  let verdict: RunningVerdict;
  let session: ClientHttp2Session;
  const check = lpm(encodeCheckRequest(httpCheckRequest({ path: '/healthz' })));

  beforeAll(async () => {
    verdict = await startTestVerdict(['server.transport.maxOpenCalls=2', 'server.transport.maxHealthWatches=2']);
    session = connectRaw(`http://127.0.0.1:${verdict.grpcPort}`);
  });
  afterAll(async () => {
    session?.destroy();
    await verdict?.stop();
  });

  it('a Watch past maxHealthWatches is ERR_GRPC_BUSY, Checks keep their own places, and a Watch ending frees one', async () => {
    const watches = await Promise.all([openWatch(session, Buffer.from('')), openWatch(session, Buffer.from('x'))]);
    const third = await rawCall(session, grpcHeaders(WATCH_PATH), (s) => s.end(lpm(healthRequest(Buffer.from('')))));
    expect(third).toMatchObject({ grpcStatus: GrpcStatus.RESOURCE_EXHAUSTED, grpcMessage: 'ERR_GRPC_BUSY', trailersOnly: true });
    // Two Watches open took none of the two unary places: two Checks at once are both answered.
    const answers = await Promise.all([0, 1].map(() => rawCall(session, grpcHeaders(CHECK_PATH), (s) => s.end(check))));
    expect(answers.map((a) => a.grpcStatus)).toEqual([GrpcStatus.OK, GrpcStatus.OK]);
    watches[0].stream.close();
    await new Promise((resolve) => watches[0].stream.once('close', resolve));
    let again = await openWatch(session, Buffer.from('')).catch(() => null);
    for (let tries = 0; again === null && tries < 50; tries++) again = await openWatch(session, Buffer.from('')).catch(() => null);
    expect(again?.first.toString('hex')).toBe(SERVING);
    for (const w of [watches[1], again!]) w.stream.close();
  });
});

describe('server.transport.maxUnaryCallMs closes a connection that holds a unary call open', () => {
  let verdict: RunningVerdict;
  const check = lpm(encodeCheckRequest(httpCheckRequest({ path: '/healthz' })));
  const connect = (): ClientHttp2Session => connectRaw(`http://127.0.0.1:${verdict.grpcPort}`);

  beforeAll(async () => {
    verdict = await startTestVerdict(['server.transport.maxOpenCalls=4', 'server.transport.maxUnaryCallMs=1000']);
  });
  afterAll(async () => {
    await verdict?.stop();
  });

  /** Resolves with the GOAWAY error code the server sent when the session closes. */
  function goawayCode(session: ClientHttp2Session): Promise<number | undefined> {
    let code: number | undefined;
    session.once('goaway', (c: number) => (code = c));
    return new Promise((resolve) => session.once('close', () => resolve(code)));
  }

  it('answers a client never lets out, and a message that never ends, hold their places only until the connection is closed (ENHANCE_YOUR_CALM, ERR_CONNECTION_STALLED)', async () => {
    const good = connect();
    // The Watch and an answered Check come first: both are older than the stalled calls, and neither is stalled.
    const watch = await openWatch(good, Buffer.from(''));
    expect((await rawCall(good, grpcHeaders(CHECK_PATH), (s) => s.end(check))).grpcStatus).toBe(GrpcStatus.OK);
    // Zero flow-control window: three answers whose DATA can never go out.
    const stingy = connect();
    stingy.settings({ initialWindowSize: 0 });
    const stingyClosed = goawayCode(stingy);
    await Promise.all(
      [0, 1, 2].map(() => {
        const held = stingy.request(grpcHeaders(CHECK_PATH));
        held.on('error', () => undefined);
        held.end(check);
        return new Promise((resolve) => held.once('response', resolve));
      }),
    );
    // A message that never ends, with no grpc-timeout to end the call.
    const dribbler = connect();
    const dribblerClosed = goawayCode(dribbler);
    await stalledCheck(dribbler, check).stream;
    await roundTrip(dribbler);
    // All four places are held: the good connection's Check is refused.
    expect((await rawCall(good, grpcHeaders(CHECK_PATH), (s) => s.end(check))).grpcMessage).toBe('ERR_GRPC_BUSY');
    expect(await stingyClosed).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    expect(await dribblerClosed).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    // Their places are free again, and the good connection, whose Watch is as old, is still open.
    expect((await answeredOnceFree(good, check)).grpcStatus).toBe(GrpcStatus.OK);
    expect(good.closed).toBe(false);
    expect(watch.stream.closed).toBe(false);
    expect(await metricsText(verdict)).toContain('verdict_transport_refusals_total{listener="grpc",code="ERR_CONNECTION_STALLED"} 2');
    watch.stream.close();
    good.destroy();
  });
});
