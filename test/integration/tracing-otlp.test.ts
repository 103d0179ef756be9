import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load-config';
import type { RunningVerdict } from '../../src/main';
import { CheckTracer, sampledFlag } from '../../src/telemetry/tracing';
import { inProcessPipeline } from '../../loadtest/bench-cache';
import type { CheckRequest } from '../../src/request/check-request';
import { startOTLPReceiver, tracedVerdictOverrides, type ReceivedSpan } from '../helpers/otlp-receiver';
import { checkClient, httpCheckRequest, startTestVerdict, type CheckClient } from '../helpers/verdict-harness';
import { waitFor } from '../helpers/wait-for';

// Real verdict with tracing on, exporting by OTLP/HTTP to an in-test receiver (see otlp-receiver.ts for
// why not Jaeger). Each Check continues the trace its CheckRequest headers carry: W3C traceparent, B3
// single header, B3 multi headers; the steps (identity, cache, evaluate, log) are its children.

const hex = (bytes: number): string => randomBytes(bytes).toString('hex');

describe('tracing: OTLP/HTTP spans for Check', () => {
  let receiver: Awaited<ReturnType<typeof startOTLPReceiver>>;
  let traced: RunningVerdict;
  let untraced: RunningVerdict;
  let client: CheckClient;

  beforeAll(async () => {
    receiver = await startOTLPReceiver();
    // sampleRatio 0: only Checks whose caller sampled them are traced (parent-based).
    traced = await startTestVerdict(tracedVerdictOverrides(receiver.url));
    untraced = await startTestVerdict([]);
    client = checkClient(`127.0.0.1:${traced.grpcPort}`);
  });
  afterAll(async () => {
    client?.close();
    await traced?.stop();
    await untraced?.stop();
    await receiver?.stop();
  });

  async function spansOf(traceId: string, count: number): Promise<ReceivedSpan[]> {
    await waitFor(
      () => receiver.spans.filter((s) => s.traceId === traceId).length >= count,
      `${count} spans of trace ${traceId}`,
      15_000,
      20,
    );
    return receiver.spans.filter((s) => s.traceId === traceId);
  }

  function expectCheckTree(spans: ReceivedSpan[], traceId: string, parentSpanId: string): ReceivedSpan {
    const check = spans.find((s) => s.name === 'verdict.check');
    expect(check).toMatchObject({ traceId, parentSpanId, serviceName: 'verdict', kind: 2 });
    const children = spans.filter((s) => s.parentSpanId === check!.spanId).map((s) => s.name);
    expect(children.sort()).toEqual(['verdict.cache', 'verdict.evaluate', 'verdict.identity', 'verdict.log']);
    return check!;
  }

  it.each([
    ['W3C traceparent', (t: string, s: string) => ({ traceparent: `00-${t}-${s}-01` })],
    ['B3 single header', (t: string, s: string) => ({ b3: `${t}-${s}-1` })],
    ['B3 multi headers', (t: string, s: string) => ({ 'x-b3-traceid': t, 'x-b3-spanid': s, 'x-b3-sampled': '1' })],
  ])("%s: verdict's Check span is a child of the caller's span, its steps children of it", async (_name, headers) => {
    const traceId = hex(16);
    const parent = hex(8);
    const res = await client.check(httpCheckRequest({ path: '/healthz', headers: headers(traceId, parent) }));
    expect(res.okResponse).toBeDefined();
    const check = expectCheckTree(await spansOf(traceId, 5), traceId, parent);
    expect(check.attributes).toMatchObject({ 'verdict.allowed': true, 'verdict.reason': 'ALLOWED', 'http.response.status_code': 200 });
  });

  it('a deny is an answer (no error status); the reason and decision id are on the span', async () => {
    const traceId = hex(16);
    const parent = hex(8);
    const res = await client.check(httpCheckRequest({ path: '/admin', headers: { traceparent: `00-${traceId}-${parent}-01` } }));
    const decisionId = res.dynamicMetadata?.fields?.decision_id?.stringValue;
    const check = expectCheckTree(await spansOf(traceId, 5), traceId, parent);
    expect(check.attributes).toMatchObject({
      'verdict.allowed': false,
      'verdict.reason': 'DENIED_BY_POLICY',
      'verdict.decision_id': decisionId,
    });
    expect(check.status?.code ?? 0).not.toBe(2);
  });

  it('a caller that did not sample, or sent no context, is not traced at sampleRatio 0', async () => {
    const unsampled = hex(16);
    await client.check(httpCheckRequest({ path: '/healthz', headers: { traceparent: `00-${unsampled}-${hex(8)}-00` } }));
    await client.check(httpCheckRequest({ path: '/healthz' }));
    // A sampled Check sent after them: once its spans arrive, earlier ones would have too.
    const marker = hex(16);
    await client.check(httpCheckRequest({ path: '/healthz', headers: { traceparent: `00-${marker}-${hex(8)}-01` } }));
    await spansOf(marker, 5);
    expect(receiver.spans.filter((s) => s.traceId === unsampled)).toEqual([]);
    expect(receiver.spans.filter((s) => s.traceId !== marker && s.parentSpanId === undefined && s.name === 'verdict.check')).toEqual([]);
  });

  it("prefers the transport's call headers (Envoy's ext_authz span) over the CheckRequest's HTTP headers", async () => {
    const config = validateConfig({ tracing: { enabled: true, otlpEndpoint: receiver.url, sampleRatio: 0, exportDelayMs: 20 } }).tracing;
    const tracer = new CheckTracer(config);
    const { pipeline } = await inProcessPipeline(['cache.enabled=false'], undefined, tracer);
    const [downstream, envoySpan, traceId] = [hex(8), hex(8), hex(16)];
    const request = httpCheckRequest({
      path: '/healthz',
      headers: { traceparent: `00-${hex(16)}-${downstream}-01` },
    }) as unknown as CheckRequest;
    await pipeline.check({ message: request, wireBytes: 500 }, 'grpc', { traceparent: `00-${traceId}-${envoySpan}-01` });
    expectCheckTree(await spansOf(traceId, 5), traceId, envoySpan);
    await tracer.shutdown();
  });

  it('is off by default: a verdict without tracing config sends nothing', async () => {
    expect(untraced).toBeDefined();
    const c = checkClient(`127.0.0.1:${untraced.grpcPort}`);
    const traceId = hex(16);
    await c.check(httpCheckRequest({ path: '/healthz', headers: { traceparent: `00-${traceId}-${hex(8)}-01` } }));
    c.close();
    const marker = hex(16);
    await client.check(httpCheckRequest({ path: '/healthz', headers: { traceparent: `00-${marker}-${hex(8)}-01` } }));
    await spansOf(marker, 5);
    expect(receiver.spans.filter((s) => s.traceId === traceId)).toEqual([]);
  });
});

describe('tracing: the sampling decision', () => {
  const T = '4bf92f3577b34da6a3ce929d0e0e4736';
  const S = '00f067aa0ba902b7';
  it.each([
    ['traceparent sampled', { traceparent: `00-${T}-${S}-01` }, true],
    ['traceparent not sampled', { traceparent: `00-${T}-${S}-00` }, false],
    ['traceparent malformed: no decision', { traceparent: `00-${T}-zz-01` }, null],
    ['b3 single sampled', { b3: `${T}-${S}-1` }, true],
    ['b3 single debug', { b3: `${T}-${S}-d` }, true],
    ['b3 single deny', { b3: '0' }, false],
    ['b3 single, decision deferred', { b3: `${T}-${S}` }, null],
    ['b3 multi sampled', { 'x-b3-traceid': T, 'x-b3-spanid': S, 'x-b3-sampled': '1' }, true],
    ['b3 multi not sampled', { 'x-b3-traceid': T, 'x-b3-spanid': S, 'x-b3-sampled': '0' }, false],
    ['b3 multi debug flag', { 'x-b3-flags': '1' }, true],
    ['no context', { 'user-agent': 'curl' }, null],
  ])('%s', (_name, headers, want) => {
    expect(sampledFlag(headers)).toBe(want);
  });

  it.each([
    ['below the ratio: traced', 0.2, 0.25, true],
    ['at or above the ratio: not traced', 0.25, 0.25, false],
    ['ratio 0: never', 0, 0, false],
  ])('a Check without caller context, random %s', async (_name, random, ratio, traced) => {
    const config = validateConfig({ tracing: { enabled: true, sampleRatio: ratio, otlpEndpoint: 'http://127.0.0.1:9/v1/traces' } }).tracing;
    const tracer = new CheckTracer(config, () => random);
    expect(tracer.startCheck({ 'user-agent': 'curl' }) !== null).toBe(traced);
    await tracer.shutdown();
  });
});
