import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningVerdict } from '../../src/main';
import { send } from '../helpers/envoy-client';
import type { RunningEnvoy } from '../helpers/envoy-process';
import { printEnvoyLogsOnFailure, startEnvoyFor } from '../helpers/envoy-stack';
import { startOTLPReceiver, tracedVerdictOverrides, type ReceivedSpan } from '../helpers/otlp-receiver';
import { startEchoUpstream, type EchoUpstream } from '../helpers/upstream-echo';
import { startTestVerdict } from '../helpers/verdict-harness';
import { waitFor } from '../helpers/wait-for';

// A real Envoy (envoy/tracing-otel.yaml) with its OpenTelemetry tracer on, exporting OTLP/HTTP (protobuf)
// to the same in-test receiver as verdict (OTLP/HTTP JSON). Envoy's ext_authz gRPC client makes a CLIENT
// span and sends its context in the Check call's HTTP/2 headers; verdict's edge hands those call headers
// to the pipeline, so verdict.check must be that span's child — not the downstream client's.

const hex = (bytes: number): string => randomBytes(bytes).toString('hex');
const SPAN_KIND = { SERVER: 2, CLIENT: 3 } as const;

describe("tracing through a real Envoy: verdict's Check span is a child of Envoy's ext_authz span", () => {
  let receiver: Awaited<ReturnType<typeof startOTLPReceiver>>;
  let verdict: RunningVerdict;
  let upstream: EchoUpstream;
  let envoy: RunningEnvoy;
  printEnvoyLogsOnFailure(() => [envoy]);

  beforeAll(async () => {
    receiver = await startOTLPReceiver();
    // Only Checks the caller (Envoy) sampled are traced.
    verdict = await startTestVerdict(tracedVerdictOverrides(receiver.url));
    upstream = await startEchoUpstream();
    envoy = await startEnvoyFor('tracing-otel.yaml', {
      LISTENER_PORT: 0,
      VERDICT_PORT: verdict.grpcPort,
      APP_PORT: upstream.port,
      AUTHZ_TIMEOUT: '2s',
      OTLP_PORT: Number(new URL(receiver.url).port),
    });
  });

  afterAll(async () => {
    await envoy?.stop();
    await verdict?.stop();
    await upstream?.stop();
    await receiver?.stop();
  });

  /** Envoy's spans and verdict's Check span of one trace, once all have arrived (each exporter sends on its own). */
  async function traceOf(traceId: string): Promise<{ envoy: ReceivedSpan[]; check: ReceivedSpan }> {
    const of = (service: string): ReceivedSpan[] => receiver.spans.filter((s) => s.traceId === traceId && s.serviceName === service);
    await waitFor(
      () =>
        [SPAN_KIND.SERVER, SPAN_KIND.CLIENT].every((kind) => of('envoy-sidecar').some((s) => s.kind === kind)) &&
        of('verdict').some((s) => s.name === 'verdict.check'),
      `Envoy's ingress and ext_authz spans and verdict.check of trace ${traceId}`,
      15_000,
      20,
    );
    return { envoy: of('envoy-sidecar'), check: of('verdict').find((s) => s.name === 'verdict.check') as ReceivedSpan };
  }

  /** The parent of verdict.check: an Envoy CLIENT span (the ext_authz call), itself under Envoy's ingress span. */
  function expectChildOfExtAuthzSpan(envoySpans: ReceivedSpan[], check: ReceivedSpan): { ingress: ReceivedSpan } {
    const extAuthz = envoySpans.find((s) => s.spanId === check.parentSpanId);
    expect(extAuthz, `verdict.check's parent ${check.parentSpanId} is one of Envoy's spans`).toBeDefined();
    expect(extAuthz).toMatchObject({ kind: SPAN_KIND.CLIENT, traceId: check.traceId });
    expect(extAuthz?.name).toContain('envoy.service.auth.v3.Authorization');
    const ingress = envoySpans.find((s) => s.spanId === extAuthz?.parentSpanId);
    expect(ingress).toMatchObject({ kind: SPAN_KIND.SERVER });
    return { ingress: ingress as ReceivedSpan };
  }

  it("continues the client's traceparent: client span → Envoy ingress → Envoy ext_authz (CLIENT) → verdict.check", async () => {
    const [traceId, clientSpan] = [hex(16), hex(8)];
    const res = await send(envoy.listenerPort('ingress_http'), {
      path: '/healthz',
      headers: { traceparent: `00-${traceId}-${clientSpan}-01` },
    });
    expect(res.status).toBe(200);
    const { envoy: envoySpans, check } = await traceOf(traceId);
    const { ingress } = expectChildOfExtAuthzSpan(envoySpans, check);
    expect(ingress.parentSpanId).toBe(clientSpan);
    // Not the downstream client's span: that is what verdict would pick without the call headers.
    expect(check.parentSpanId).not.toBe(clientSpan);
    expect(check.attributes).toMatchObject({ 'verdict.allowed': true });
  });

  it('a request without trace context: Envoy starts the trace (random_sampling 100%) and verdict joins it', async () => {
    const before = new Set(receiver.spans.map((s) => s.traceId));
    const res = await send(envoy.listenerPort('ingress_http'), { path: '/healthz' });
    expect(res.status).toBe(200);
    await waitFor(
      () => receiver.spans.some((s) => !before.has(s.traceId) && s.serviceName === 'verdict' && s.name === 'verdict.check'),
      'a verdict.check span of a new trace',
      15_000,
      20,
    );
    const check = receiver.spans.find((s) => !before.has(s.traceId) && s.name === 'verdict.check') as ReceivedSpan;
    const { envoy: envoySpans } = await traceOf(check.traceId);
    const { ingress } = expectChildOfExtAuthzSpan(envoySpans, check);
    expect(ingress.parentSpanId).toBeUndefined();
  });
});
