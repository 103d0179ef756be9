import { z } from 'zod';
import { hostSchema } from './bounds';

/** Envoy's HTTP ext_authz protocol (http_service), served on its own listener. port null disables it. */
export const httpAuthzSchema = z
  .strictObject({
    host: hostSchema.default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).nullable().default(null),
    /** Envoy's http_service.path_prefix: stripped from the path verdict receives to recover the original. */
    pathPrefix: z
      .string()
      .max(1024)
      .regex(/^(\/[^?#]*)?$/, 'must be empty or start with "/"')
      .default(''),
    /**
     * A request (its headers and body) must arrive whole within this time, or its connection is dropped
     * (node:http's requestTimeout; Envoy's own timeout is shorter).
     */
    requestTimeoutMs: z.number().int().min(100).max(60_000).default(5_000),
    /**
     * A connection on which nothing moves for this long is closed (node:http's socket timeout, which it
     * looks at twice before acting: so within 2× of it): a client that pipelines requests and never reads the
     * answers would keep its connection, and the answers in its socket buffers, for ever. Counted as
     * ERR_CONNECTION_STALLED when answers were waiting. Over the keep-alive timeout (65 s), so that an idle
     * kept-alive connection is closed by that first.
     */
    stalledResponseMs: z.number().int().min(1000).max(3_600_000).default(120_000),
    /** Connections open at once; one more is closed as it is accepted (verdict_connections_dropped_total{listener="http"}). */
    maxConnections: z.number().int().min(1).max(1_000_000).default(4096),
  })
  .prefault({});
