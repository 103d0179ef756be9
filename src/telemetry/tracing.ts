import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Context,
  type Span,
  type TextMapGetter,
  type Tracer,
} from '@opentelemetry/api';
import { CompositePropagator, parseTraceParent, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AlwaysOnSampler, BatchSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import type { TracingConfig } from '../config/sections/tracing';
import type { Decision } from '../decision/decision';

/** The steps of one Check that get a child span (ARCHITECTURE.md: identify → cache → evaluate → log). */
export type TraceStep = 'identity' | 'cache' | 'evaluate' | 'log';

/** One Check's trace: a server span continuing the caller's trace, with a child span per step. */
export interface CheckTrace {
  /** Runs fn inside a child span named verdict.<step>; a returned promise ends the span when it settles. */
  step<T>(step: TraceStep, fn: () => T): T;
  end(decision: Decision): void;
}

type Headers = Readonly<Record<string, string | undefined>>;

/** Envoy lower-cases header names in CheckRequest (attributes.request.http.headers). */
const headerGetter: TextMapGetter<Headers> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
};

/**
 * Spans for Check, exported by OTLP/HTTP through a bounded batch queue (a slow or absent collector costs
 * dropped spans, never a slower Check). Context comes from the CheckRequest's headers: W3C `traceparent`
 * (Trace Context §3.2), else B3 single (`b3`) or multi (`x-b3-*`) headers.
 */
export class CheckTracer {
  private readonly provider: TracerProvider;
  private readonly tracer: Tracer;
  private readonly propagator = new CompositePropagator({
    propagators: [new W3CTraceContextPropagator(), new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER })],
  });

  private readonly ratio: number;
  private readonly parentBased: boolean;

  constructor(
    config: TracingConfig,
    private readonly random: () => number = Math.random,
  ) {
    this.ratio = config.sampleRatio;
    this.parentBased = config.parentBased;
    const exporter = new OTLPTraceExporter({ url: config.otlpEndpoint, timeoutMillis: config.exportTimeoutMs });
    this.provider = new TracerProvider({
      // The decision is made in startCheck, before any SDK work; what reaches the SDK is traced.
      sampler: new AlwaysOnSampler(),
      resource: resourceFromAttributes({ 'service.name': config.serviceName }),
      spanProcessors: [
        new BatchSpanProcessor({
          exporter,
          maxQueueSize: config.maxQueueSize,
          maxExportBatchSize: Math.min(512, config.maxQueueSize),
          scheduledDelayMillis: config.exportDelayMs,
          exportTimeoutMillis: config.exportTimeoutMs,
        }),
      ],
    });
    this.tracer = this.provider.getTracer('verdict');
  }

  /**
   * Starts the Check span as a child of the context in the request's headers (none: a new trace), or
   * returns null when this Check is not sampled: an unsampled Check costs a header look-up and, without
   * a caller's decision, one random number (measured in loadtest/bench-tracing.ts).
   */
  startCheck(requestHeaders: Headers | undefined, callHeaders?: Headers): CheckTrace | null {
    const fromCall = callHeaders ? sampledFlag(callHeaders) : null;
    const headers = fromCall !== null ? callHeaders : requestHeaders;
    const callerSampled = fromCall ?? (requestHeaders ? sampledFlag(requestHeaders) : null);
    if (this.parentBased && callerSampled !== null) {
      if (!callerSampled) return null;
    } else if (this.ratio === 0 || this.random() >= this.ratio) return null;
    const parent = headers ? this.propagator.extract(ROOT_CONTEXT, headers, headerGetter) : ROOT_CONTEXT;
    const span = this.tracer.startSpan('verdict.check', { kind: SpanKind.SERVER }, parent);
    return new SampledTrace(this.tracer, span, trace.setSpan(parent, span));
  }

  /** Sends what is queued, then stops (at shutdown, after the last Check). */
  shutdown(): Promise<void> {
    return this.provider.shutdown();
  }
}

/**
 * The caller's sampling decision, or null when it sent no readable context. W3C Trace Context §3.2.2.5:
 * bit 0 of trace-flags of a valid traceparent; B3 single header `{trace}-{span}-{1|d|0}` or a bare `0`/`1`/`d`; B3 multi
 * `x-b3-sampled: 1|0` or `x-b3-flags: 1` (debug).
 */
export function sampledFlag(h: Headers): boolean | null {
  const tp = h.traceparent;
  if (tp !== undefined) {
    // The propagator's own reading, so that the header that decides is the one continued: §3.2.2 refuses
    // version ff, all-zero ids and a version-00 header with more after its flags; such a header decides
    // nothing (§3.2.4: as if absent), and B3 or the ratio does.
    const parent = parseTraceParent(tp);
    if (parent) return (parent.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED;
  }
  const b3 = h.b3;
  if (b3 !== undefined) {
    const last = b3.length <= 1 ? b3 : (b3.split('-')[2] ?? '');
    if (last === '1' || last === 'd') return true;
    if (last === '0') return false;
  }
  if (h['x-b3-flags'] === '1') return true;
  const multi = h['x-b3-sampled'];
  if (multi === '1' || multi === 'true') return true;
  if (multi === '0' || multi === 'false') return false;
  return null;
}

class SampledTrace implements CheckTrace {
  constructor(
    private readonly tracer: Tracer,
    private readonly span: Span,
    private readonly context: Context,
  ) {}

  step<T>(step: TraceStep, fn: () => T): T {
    const child = this.tracer.startSpan(`verdict.${step}`, { kind: SpanKind.INTERNAL }, this.context);
    let result: T;
    try {
      result = fn();
    } catch (err) {
      failed(child, err);
      child.end();
      throw err;
    }
    if (result instanceof Promise) {
      return result.then(
        (v: unknown) => (child.end(), v),
        (err: unknown) => {
          failed(child, err);
          child.end();
          throw err;
        },
      ) as T;
    }
    child.end();
    return result;
  }

  end(decision: Decision): void {
    this.span.setAttributes({
      'verdict.decision_id': decision.id,
      'verdict.allowed': decision.allowed,
      'verdict.reason': decision.reason,
      'http.response.status_code': decision.httpStatus,
      ...(decision.bundle ? { 'verdict.bundle.sha256': decision.bundle.sha256 } : {}),
    });
    // A deny is an answer; only verdict failing to decide (a coded error) marks the span as an error.
    if (decision.reason.startsWith('ERR_')) this.span.setStatus({ code: SpanStatusCode.ERROR, message: decision.reason });
    this.span.end();
  }
}

function failed(span: Span, err: unknown): void {
  const code = (err as { code?: unknown }).code;
  span.setStatus({ code: SpanStatusCode.ERROR, message: typeof code === 'string' ? code : 'ERR_INTERNAL' });
}
