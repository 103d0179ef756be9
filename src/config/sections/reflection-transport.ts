import { z } from 'zod';

/**
 * Bounds of the gRPC reflection listener (grpc-js, src/server/reflection-server.ts), which has none of
 * its own: grpc-js sets no session memory or stream bound, and nothing ends a connection. Reflection is a
 * debugging aid (grpcurl, grpcui: one connection, one stream), so the bounds are small; each holds what
 * one client can take, and none touches the Check listener.
 */
export const reflectionTransportSchema = z
  .strictObject({
    /** Connections open at once; one more is closed as it is accepted (verdict_connections_dropped_total{listener="reflection"}). */
    maxConnections: z.number().int().min(1).max(10_000).default(16),
    /** SETTINGS_MAX_CONCURRENT_STREAMS per connection (grpc.max_concurrent_streams; grpc-js sets none). */
    maxConcurrentStreams: z.number().int().min(1).max(1000).default(16),
    /** node:http2 maxSessionMemory (MB) per connection (grpc-node.max_session_memory; grpc-js's default is unbounded). */
    maxSessionMemoryMb: z.number().int().min(1).max(256).default(4),
    /**
     * A connection this old (±10%) gets GOAWAY, and is destroyed maxConnectionAgeGraceMs later, whatever
     * it holds: a stream never ended, answers never read (grpc.max_connection_age_ms).
     */
    maxConnectionAgeMs: z.number().int().min(100).max(86_400_000).default(300_000),
    /** After the max-age GOAWAY, in-flight calls get this long (grpc.max_connection_age_grace_ms). */
    maxConnectionAgeGraceMs: z.number().int().min(1).max(600_000).default(10_000),
    /**
     * A connection on which no byte moved either way for this long is closed: one that never spoke, one
     * whose client stopped reading (counted ERR_CONNECTION_STALLED when answers were waiting).
     */
    idleTimeoutMs: z.number().int().min(100).max(86_400_000).default(60_000),
    /**
     * A connection on which this many calls ended without an answer (reset as they opened: HTTP/2 Rapid
     * Reset; nghttp2 stops reading such a connection after ~1,000 but keeps its socket) is closed, counted
     * ERR_GRPC_RESET_FLOOD. Over a connection's life, which maxConnectionAgeMs bounds; a reflection client
     * sends a request on every call.
     */
    maxUnansweredCalls: z.number().int().min(1).max(100_000).default(100),
  })
  .prefault({});

export type ReflectionTransport = z.infer<typeof reflectionTransportSchema>;
