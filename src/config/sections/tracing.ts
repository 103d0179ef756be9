import { z } from 'zod';
import { httpURLSchema } from './bounds';

/**
 * OpenTelemetry spans for Check (src/telemetry/tracing.ts), exported by OTLP/HTTP (JSON). Off by default.
 * A Check whose CheckRequest carries a sampled `traceparent` / `b3` context is traced when parentBased
 * is true (the caller decided); others are sampled at sampleRatio.
 */
export const tracingSchema = z
  .strictObject({
    enabled: z.boolean().default(false),
    /** OTLP/HTTP traces endpoint (the collector's /v1/traces). */
    otlpEndpoint: httpURLSchema.default('http://127.0.0.1:4318/v1/traces'),
    /** Share of Checks without a sampled parent that are traced (0..1). */
    sampleRatio: z.number().min(0).max(1).default(0.01),
    /** Follow the caller's sampled flag (W3C trace-context §3.2.2.5, B3 "sampled"). */
    parentBased: z.boolean().default(true),
    serviceName: z.string().min(1).max(256).default('verdict'),
    /** Bounded: finished spans beyond this wait-queue size are dropped (counted), never block a Check. */
    maxQueueSize: z.number().int().min(64).max(65_536).default(2048),
    exportTimeoutMs: z.number().int().min(100).max(60_000).default(10_000),
    /** How often queued spans are sent. */
    exportDelayMs: z.number().int().min(10).max(60_000).default(1000),
  })
  .prefault({});

export type TracingConfig = z.infer<typeof tracingSchema>;
