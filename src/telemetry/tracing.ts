import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span, type TextMapGetter, type Tracer } from '@opentelemetry/api';
import { CompositePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, TracerProvider, type Sampler } from '@opentelemetry/sdk-trace';
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

  constructor(config: TracingConfig) {
    const ratio = new TraceIdRatioBasedSampler(config.sampleRatio);
    const sampler: Sampler = config.parentBased ? new ParentBasedSampler({ root: ratio }) : ratio;
    const exporter = new OTLPTraceExporter({ url: config.otlpEndpoint, timeoutMillis: config.exportTimeoutMs });
    this.provider = new TracerProvider({
      sampler,
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

  /** Starts the Check span as a child of the context in the request's headers (none: a new trace). */
  startCheck(headers: Headers | undefined): CheckTrace {
    const parent = headers ? this.propagator.extract(ROOT_CONTEXT, headers, headerGetter) : ROOT_CONTEXT;
    const span = this.tracer.startSpan('verdict.check', { kind: SpanKind.SERVER }, parent);
    // An unsampled Check gets a non-recording span: its steps skip span work entirely.
    if (!span.isRecording()) return new UnsampledTrace(span);
    return new SampledTrace(this.tracer, span, trace.setSpan(parent, span));
  }

  /** Sends what is queued, then stops (at shutdown, after the last Check). */
  shutdown(): Promise<void> {
    return this.provider.shutdown();
  }
}

class UnsampledTrace implements CheckTrace {
  constructor(private readonly span: Span) {}
  step<T>(_step: TraceStep, fn: () => T): T {
    return fn();
  }
  end(): void {
    this.span.end();
  }
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
