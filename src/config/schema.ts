import { z } from 'zod';
import { bundlesSchema } from './sections/bundles';
import { headerNameSchema, hostSchema, nameSchema, pathSchema, unixSocketPathSchema } from './sections/bounds';
import { cacheSchema } from './sections/cache';
import { decisionLogSchema } from './sections/decision-log';
import { enginesSchema } from './sections/engines';
import { fastpathSchema } from './sections/fastpath';
import { grpcTransportSchema } from './sections/grpc-transport';
import { httpAuthzSchema } from './sections/http-authz';
import { identitySchema } from './sections/identity';
import { isEnvoyDenyStatus } from '../policy/envoy-status-code';
import { DEFAULT_MAX_INPUT_DEPTH } from '../request/exact-json-parse';
import { shadowSchema } from './sections/shadow';
import { tenantsSchema } from './sections/tenants';
import { tracingSchema } from './sections/tracing';
import { kernelTelemetrySchema } from './sections/kernel-telemetry';
import { reflectionTransportSchema } from './sections/reflection-transport';

/**
 * The whole configuration: one schema with its defaults. Validated once at start-up, then frozen.
 * Units are in the key names (…Ms, …Bytes). Each capability's section lives in sections/<name>.ts.
 */
const port = z.number().int().min(0).max(65535);
/** A deny status Envoy can be sent: in envoy.type.v3.StatusCode (so 451 and 418 are refused at start-up). */
const httpStatus = z
  .number()
  .int()
  .refine((n) => isEnvoyDenyStatus(n), { message: "must be a final status in Envoy's envoy.type.v3.StatusCode enum" });

export const listenSchema = z.strictObject({
  host: hostSchema.default('127.0.0.1'),
  port: port.default(9191),
  /** Also listen on this Unix socket path (gRPC only); null to disable. */
  unixSocket: unixSocketPathSchema.nullable().default(null),
  /**
   * opa-envoy-plugin's `grpc-max-send-msg-size`: a CheckResponse larger than this is not sent; a coded deny
   * (ERR_RESPONSE_TOO_LARGE) goes instead. (Its `grpc-max-recv-msg-size` is limits.maxRequestBytes.)
   */
  maxSendMessageBytes: z
    .number()
    .int()
    .min(1024)
    .max(2 ** 31 - 1)
    .default(4 * 1024 * 1024),
});

export const configSchema = z.strictObject({
  server: z
    .strictObject({
      grpc: listenSchema.prefault({}),
      /** HTTP/2 limits and connection lifetimes of the gRPC listener. */
      transport: grpcTransportSchema,
      /** HTTP listener for /healthz, /readyz, /metrics. port null disables it. */
      http: z
        .strictObject({
          host: hostSchema.default('127.0.0.1'),
          port: port.nullable().default(8181),
          /**
           * Sampling period of the event-loop delay behind verdict_nodejs_eventloop_lag_*. A block shorter
           * than it can go unseen; each sample wakes the loop, so 1 ms costs ~2.5% of a core idle and
           * ~10% CPU per Check at saturation (docs/transport.md). prom-client's default is 10.
           */
          eventLoopResolutionMs: z.number().int().min(1).max(1000).default(10),
        })
        .prefault({}),
      /**
       * Worker processes sharing the gRPC listener (cluster mode). "auto" = one per core. 1 = a single
       * process (no supervisor). See docs/scaling.md.
       */
      workers: z.union([z.literal('auto'), z.number().int().min(1).max(256)]).default('auto'),
      /** Set by the cluster supervisor for each worker (VERDICT_WORKER_SLOT); keeps per-worker files apart. */
      workerSlot: z.number().int().min(0).max(255).nullable().default(null),
      /** Serve gRPC server reflection (off by default: it discloses the API surface). */
      reflection: z.boolean().default(false),
      /**
       * On SIGTERM, first report NOT_SERVING (gRPC health, /readyz) and keep answering Checks this long, so
       * Envoy's health checks move traffic to other replicas; then stop (shutdownGraceMs). 0: stop at once.
       */
      drainWindowMs: z.number().int().min(0).max(300_000).default(0),
      /** Port of the reflection listener (grpc-js, plaintext, on server.grpc.host); used only when reflection is on. */
      reflectionPort: port.default(9193),
      /** Bounds of the reflection listener: connections, streams, session memory, connection age and idle, cancelled calls. */
      reflectionTransport: reflectionTransportSchema,
      /** On SIGTERM: stop accepting, wait this long for in-flight calls, then force-close. */
      shutdownGraceMs: z.number().int().min(0).max(300_000).default(10_000),
      /**
       * V8's old-generation growth: the next full GC runs once the heap has grown this many percent past
       * what the last one kept (V8 --heap-growing-percent, set when `serve` starts). 0 leaves V8's own
       * factor (up to 300 %). 50 keeps RSS under load ~30 MiB lower for ~10 % more CPU per Check at
       * saturation: docs/memory.md.
       */
      heapGrowingPercent: z.number().int().min(0).max(1000).default(50),
      /**
       * How often glibc's malloc_trim(0) runs on the libuv pool (native/malloc-trim.c) to give freed native
       * memory back to the kernel; 0 = never. ~11 MiB less RSS after load: docs/memory.md, section 8.
       */
      mallocTrimIntervalMs: z.number().int().min(0).max(3_600_000).default(5000),
      /**
       * Start V8's incremental marking every this many Checks while the event loop is under half busy
       * (native/gc-marking.c), so that a full GC's pause finalizes at most that many Checks' header strings;
       * 0 = V8's own cadence only. Full-GC pauses at 2,000 Check/s 3-4x shorter for more CPU at that rate: docs/memory.md, section 9.
       */
      gcMarkingEveryChecks: z.number().int().min(0).max(10_000_000).default(2000),
    })
    .prefault({}),
  limits: z
    .strictObject({
      /** Cap on the whole CheckRequest as received (bytes on the wire). */
      maxRequestBytes: z
        .number()
        .int()
        .min(1024)
        .max(64 * 1024 * 1024)
        .default(1024 * 1024),
      /** Cap on the number of request headers. */
      maxHeaders: z.number().int().min(1).max(10_000).default(200),
      /** Bodies larger than this are not parsed into parsed_body (truncated_body is set). */
      maxParsedBodyBytes: z
        .number()
        .int()
        .min(0)
        .max(16 * 1024 * 1024)
        .default(64 * 1024),
      /**
       * Nesting bound of the input document (objects and lists from its root, metadata Structs and bodies
       * included): deeper is refused (ERR_REQUEST_TOO_DEEP) while decoding, long before any serializer's
       * stack would overflow (JSON.stringify survives a few thousand levels).
       */
      maxInputDepth: z.number().int().min(8).max(1000).default(DEFAULT_MAX_INPUT_DEPTH),
      /** Fields read off the wire per CheckRequest, known or unknown (ERR_REQUEST_TOO_MANY_FIELDS). */
      maxRequestFields: z.number().int().min(100).max(10_000_000).default(50_000),
      /** Query parameters, form-body pairs and multipart parts per request (ERR_REQUEST_TOO_MANY_PARAMS). */
      maxQueryParams: z.number().int().min(1).max(1_000_000).default(1000),
    })
    .prefault({}),
  policy: z
    .strictObject({
      /** Path to a bundle (.tar.gz) or null for the embedded default bundle. */
      bundle: pathSchema.nullable().default(null),
      /** The rule queried, as a path (OPA-Envoy's default). A bundle manifest may override it. */
      entrypoint: nameSchema.min(1).default('envoy/authz/allow'),
      /**
       * opa-envoy-plugin's `skip-request-body-parse`: the body is not parsed, and the input document has no
       * `parsed_body` / `truncated_body` (the raw body stays in attributes). Saves the parse when no rule reads it.
       */
      skipRequestBodyParse: z.boolean().default(false),
      /**
       * opa-envoy-plugin's `proto-descriptor`: a FileDescriptorSet file (`protoc --include_imports
       * --descriptor_set_out`). With it, application/grpc bodies sent as raw_body are decoded into
       * parsed_body (docs/grpc-body.md). Read once at start-up; a bad file refuses the start (ERR_CONFIG).
       */
      protoDescriptor: pathSchema.nullable().default(null),
      /**
       * A decision that takes longer than this is discarded and denied (ERR_POLICY_TIMEOUT); an OPA evaluation
       * still running then is stopped where it is (docs/engines.md, "OPA evaluation deadline").
       */
      timeoutMs: z.number().int().min(1).max(60_000).default(100),
      /** opa-wasm linear memory bound, in 64 KiB pages. */
      maxMemoryPages: z.number().int().min(8).max(65_536).default(1024),
      /** Re-instantiate the wasm instance once its memory grows past this many pages. */
      recycleMemoryPages: z.number().int().min(8).max(65_536).default(256),
      /** A candidate bundle evaluated beside the active one on sampled live traffic (docs/shadow.md). */
      shadow: shadowSchema,
    })
    .prefault({}),
  decision: z
    .strictObject({
      /** HTTP status for a policy deny that names none. */
      denyStatus: httpStatus.default(403),
      /** HTTP status when the request itself is refused (too large, malformed). */
      requestErrorStatus: httpStatus.default(400),
      /** HTTP status when verdict cannot decide (engine error, timeout, no policy). */
      errorStatus: httpStatus.default(500),
      /** Response header that carries the reason code on a deny. Empty string disables it. */
      reasonHeader: headerNameSchema.default('x-verdict-reason'),
      /**
       * false: a deny carries neither the reason header nor the reason as gRPC status message, exactly the
       * response opa-envoy-plugin sends (the reason still goes to logs and metrics).
       */
      exposeReason: z.boolean().default(true),
      /**
       * opa-envoy-plugin's `dry-run`: decide and log as usual, but let every policy deny through. The
       * decision log records the real result and `dry_run: true`. Errors still deny (fail closed), as in the peer.
       */
      dryRun: z.boolean().default(false),
      /**
       * opa-envoy-plugin's `enable-performance-metrics`: time each step of every decision (identity, cache,
       * input, eval) into the decision log (metrics.timer_verdict_<step>_ns) and the
       * verdict_decision_step_duration_seconds histogram. Off: only the total and eval times are kept.
       */
      performanceMetrics: z.boolean().default(false),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    })
    .prefault({}),
  httpAuthz: httpAuthzSchema,
  engines: enginesSchema,
  identity: identitySchema,
  cache: cacheSchema,
  decisionLog: decisionLogSchema,
  fastpath: fastpathSchema,
  kernelTelemetry: kernelTelemetrySchema,
  bundles: bundlesSchema,
  tenants: tenantsSchema,
  tracing: tracingSchema,
});

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
