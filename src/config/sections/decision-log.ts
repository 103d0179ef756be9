import { z } from 'zod';
import { headerNameSchema, headerValueSchema, httpURLSchema, nameSchema, pathSchema } from './bounds';
import { DEFAULT_MASKS } from '../../decisionlog/event-mask';

const MiB = 1024 * 1024;

/** The longest retry wait: past 2^31-1 ms a Node timer fires at once, so a larger ceiling would retry in a hot loop. */
const MAX_RETRY_DELAY_MS = 3_600_000;

/** RFC 9110 §5.6.2: a field name is a token. */
const HEADER_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** RFC 9110 §5.5: no CR, LF, NUL or other controls (HTAB aside); the HTTP client would refuse each upload, quoting the value. */
function isFieldValue(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return false;
  }
  return true;
}

/** Set by verdict (the body's type and encoding) or owned by the HTTP client: a configured one breaks every upload. */
const RESERVED_HEADERS: ReadonlySet<string> = new Set([
  'content-type',
  'content-encoding',
  'content-length',
  'host',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'expect',
  'te',
  'trailer',
]);

/** Headers sent with every upload (Authorization included): checked here, as the HTTP client would refuse them at each upload. */
const sinkHeadersSchema = z
  .record(
    headerNameSchema.regex(HEADER_TOKEN, { message: 'is not an HTTP header name (RFC 9110 token)' }),
    headerValueSchema.refine(isFieldValue, { message: 'must not hold control characters (CR, LF, NUL, …)' }),
  )
  .superRefine((headers, ctx) => {
    const seen = new Set<string>();
    for (const name of Object.keys(headers)) {
      const lower = name.toLowerCase();
      if (RESERVED_HEADERS.has(lower)) ctx.addIssue({ code: 'custom', path: [name], message: 'is set by verdict or the HTTP client' });
      else if (seen.has(lower))
        ctx.addIssue({ code: 'custom', path: [name], message: 'is given more than once (header names ignore case)' });
      seen.add(lower);
    }
  });

/** The service URL: credentials in it would be refused by the HTTP client at each upload (and echoed in its error). */
const sinkURLSchema = httpURLSchema.refine(
  (url) => {
    // An unparsable URL is httpURLSchema's refusal already.
    const u = URL.parse(url);
    return u === null || (u.username === '' && u.password === '');
  },
  { message: 'must not carry credentials (user:password@); send them in decisionLog.http.headers' },
);

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
        url: sinkURLSchema,
        /** For the service's status line and headers (its body is never read). */
        timeoutMs: z.number().int().min(10).max(300_000).default(5000),
        headers: sinkHeadersSchema.default({}),
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
        minDelayMs: z.number().int().min(1).max(MAX_RETRY_DELAY_MS).default(100),
        /** Also the most a sink's Retry-After is honoured. */
        maxDelayMs: z.number().int().min(1).max(MAX_RETRY_DELAY_MS).default(30_000),
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
