import { z } from 'zod';
import { headerNameSchema, headerValueSchema, httpURLSchema, nameSchema, pathSchema } from './bounds';
import { DEFAULT_MASKS } from '../../decisionlog/event-mask';

const MiB = 1024 * 1024;

/** Decision logs (owned by src/decisionlog/). No sink enabled: decisions are only counted. */
export const decisionLogSchema = z
  .strictObject({
    /** Sink: one JSON line per decision on stdout. */
    console: z.boolean().default(false),
    /** Sink: an append-only file with size-based rotation. */
    file: z
      .strictObject({
        path: pathSchema,
        maxBytes: z
          .number()
          .int()
          .min(4096)
          .default(64 * MiB),
        maxFiles: z.number().int().min(1).max(1000).default(5),
      })
      .nullable()
      .default(null),
    /** Sink: OPA's decision-log service protocol (gzip JSON array, POST), e.g. url http://host:port/logs. */
    http: z
      .strictObject({
        url: httpURLSchema,
        timeoutMs: z.number().int().min(10).max(300_000).default(5000),
        headers: z.record(headerNameSchema, headerValueSchema).default({}),
      })
      .nullable()
      .default(null),
    /** The on-disk spool every event passes through. dir null: a private temp dir (lost on restart). */
    spool: z
      .strictObject({
        dir: pathSchema.nullable().default(null),
        maxBytes: z
          .number()
          .int()
          .min(64 * 1024)
          .default(1024 * MiB),
        segmentBytes: z
          .number()
          .int()
          .min(4096)
          .default(8 * MiB),
        fsyncIntervalMs: z.number().int().min(1).max(60_000).default(50),
      })
      .prefault({}),
    batch: z
      .strictObject({
        bytes: z
          .number()
          .int()
          .min(1024)
          .default(512 * 1024),
        delayMs: z.number().int().min(0).max(60_000).default(200),
      })
      .prefault({}),
    retry: z
      .strictObject({
        minDelayMs: z.number().int().min(1).default(100),
        maxDelayMs: z.number().int().min(1).default(30_000),
      })
      .prefault({}),
    /** Bound on events waiting in memory for the next spool write (one event-loop turn's worth). */
    maxQueueBytes: z
      .number()
      .int()
      .min(64 * 1024)
      .default(16 * MiB),
    /** Paths removed from every event (JSON pointers into the event, or dotted), or {path, replaceWith}. */
    mask: z
      .array(z.union([nameSchema.min(1), z.strictObject({ path: nameSchema.min(1), replaceWith: nameSchema })]))
      .default([...DEFAULT_MASKS]),
    /** Extra labels on every event (OPA's labels: id and version are always set). */
    labels: z.record(nameSchema, nameSchema).default({}),
    /** On shutdown, how long sinks get to catch up; the rest stays spooled for the next start. */
    drainOnCloseMs: z.number().int().min(0).max(300_000).default(2000),
  })
  .prefault({});
