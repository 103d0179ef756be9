import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningVerdict } from '../../src/main';
import { CHECK_PATH, connectRaw, encodeCheckRequest, grpcHeaders, lpm, rawCall } from '../helpers/grpc-raw-client';
import { FLAG, FRAME, frame, grpcRequestHeaders, rapidResetBurst, headerBlock, rawH2 } from '../helpers/h2-frames';
import { httpCheckRequest, startTestVerdict } from '../helpers/verdict-harness';

// HTTP/2 abuse at the frame level (the floods of CVE-2019-9512..9518, CVE-2023-44487 "Rapid Reset" and
// CVE-2024-27316 "CONTINUATION flood"), written by hand on raw sockets to a served verdict. For each: the
// abusive connection is closed by the server, and a well-behaved connection opened beside it before the
// flood is still answered after it, so one client cannot take the edge down for the others. nghttp2 (1.61
// in node 20) bounds all but one of these itself, and these cases hold it to that; Rapid Reset it bounds
// only half-way (it stops reading, node keeps the socket), which verdict completes.

const CHECK = lpm(encodeCheckRequest(httpCheckRequest({ path: '/healthz' })));

describe('gRPC edge: HTTP/2 frame floods', () => {
  let verdict: RunningVerdict;
  let good: http2.ClientHttp2Session;

  beforeAll(async () => {
    verdict = await startTestVerdict();
    good = connectRaw(`http://127.0.0.1:${verdict.grpcPort}`);
    expect((await rawCall(good, grpcHeaders(CHECK_PATH), (s) => s.end(CHECK))).grpcStatus).toBe(0);
  });
  afterAll(async () => {
    good?.destroy();
    await verdict?.stop();
  });

  async function goodStillAnswered(): Promise<void> {
    expect((await rawCall(good, grpcHeaders(CHECK_PATH), (s) => s.end(CHECK))).grpcStatus).toBe(0);
  }

  it('Rapid Reset: 20,000 streams each reset as soon as it opens', async () => {
    const c = await rawH2(verdict.grpcPort);
    c.write(rapidResetBurst(CHECK_PATH, 20_000));
    // nghttp2 alone stopped reading the connection and sent GOAWAY, but node:http2 kept it open for as long
    // as the client did: verdict's own bound (StalledCalls, under nghttp2's) closes it.
    const { goawayCodes } = await c.closed;
    expect(goawayCodes[0]).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    const metrics = await (await fetch(`http://127.0.0.1:${verdict.httpPort}/metrics`)).text();
    expect(metrics).toContain('verdict_transport_refusals_total{listener="grpc",code="ERR_GRPC_RESET_FLOOD"} 1');
    await goodStillAnswered();
  });

  it('CONTINUATION flood: one header block continued with 1 MiB of fields and never ended', async () => {
    const c = await rawH2(verdict.grpcPort);
    c.write(frame(FRAME.HEADERS, 0, 1, grpcRequestHeaders(CHECK_PATH)));
    const filler = headerBlock([['x-filler', 'f'.repeat(1000)]]);
    const continued: Buffer[] = [];
    for (let i = 0; i < 1024; i++) continued.push(frame(FRAME.CONTINUATION, 0, 1, filler));
    c.write(Buffer.concat(continued));
    const { goawayCodes } = await c.closed;
    expect(goawayCodes.length).toBeGreaterThan(0);
    await goodStillAnswered();
  });

  it('PING flood: 100,000 PINGs in one write, more acks than nghttp2 queues', async () => {
    const c = await rawH2(verdict.grpcPort);
    const ping = frame(FRAME.PING, 0, 0, Buffer.alloc(8));
    c.write(Buffer.concat(Array.from({ length: 100_000 }, () => ping)));
    await c.closed;
    await goodStillAnswered();
  });

  it('SETTINGS flood: 100,000 SETTINGS frames in one write, more acks than nghttp2 queues', async () => {
    const c = await rawH2(verdict.grpcPort);
    const settings = frame(FRAME.SETTINGS, 0, 0);
    c.write(Buffer.concat(Array.from({ length: 100_000 }, () => settings)));
    await c.closed;
    await goodStillAnswered();
  });

  it('empty DATA frames: 100,000 on one open stream', async () => {
    const c = await rawH2(verdict.grpcPort);
    c.write(frame(FRAME.HEADERS, FLAG.END_HEADERS, 1, grpcRequestHeaders(CHECK_PATH)));
    const empty = frame(FRAME.DATA, 0, 1);
    c.write(Buffer.concat(Array.from({ length: 100_000 }, () => empty)));
    await c.closed;
    await goodStillAnswered();
  });
});
