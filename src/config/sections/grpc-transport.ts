import { z } from 'zod';

const ms = z
  .number()
  .int()
  .min(1)
  .max(365 * 24 * 3600 * 1000);

/**
 * HTTP/2 settings of verdict's own gRPC edge (src/server/grpc-server.ts). Each bound protects the process
 * from one caller: session memory, header list, concurrent streams. See docs/transport.md.
 */
export const grpcTransportSchema = z
  .strictObject({
    /** SETTINGS_MAX_CONCURRENT_STREAMS per connection. */
    maxConcurrentStreams: z.number().int().min(1).max(100_000).default(1000),
    /** node:http2 maxSessionMemory (MB): a session over it refuses new streams (ENHANCE_YOUR_CALM). */
    maxSessionMemoryMb: z.number().int().min(1).max(1024).default(10),
    /** Most header fields (pairs) accepted on one request. */
    maxHeaderListPairs: z.number().int().min(8).max(10_000).default(128),
    /** SETTINGS_MAX_HEADER_LIST_SIZE: name + value + 32 per field, summed (PROTOCOL-HTTP2.md suggests 8 KiB). */
    maxHeaderListBytes: z
      .number()
      .int()
      .min(1024)
      .max(1024 * 1024)
      .default(16 * 1024),
    /**
     * Request bytes buffered at once across all connections and streams (each call holds at most
     * limits.maxRequestBytes); a call that would pass it is refused RESOURCE_EXHAUSTED (ERR_GRPC_BUSY).
     */
    maxBufferedBytes: z
      .number()
      .int()
      .min(64 * 1024)
      .max(4 * 1024 * 1024 * 1024)
      .default(64 * 1024 * 1024),
    /**
     * Connections open at once on each gRPC listener (TCP, Unix socket); one more is closed as it is
     * accepted and counted in verdict_connections_dropped_total{listener="grpc"}. Envoy keeps a few per
     * worker thread; the bound keeps a flood of connections from taking every file descriptor.
     */
    maxConnections: z.number().int().min(1).max(1_000_000).default(4096),
    /**
     * Unary calls (Check, Health Check) whose stream is open, at once, across every connection (a Check
     * whose message never ends waits for its deadline; an answer the client's flow control does not let
     * out keeps its stream). One more is answered RESOURCE_EXHAUSTED (ERR_GRPC_BUSY) before any state is
     * kept for it: maxConnections × maxConcurrentStreams is millions.
     */
    maxOpenCalls: z.number().int().min(1).max(1_000_000).default(10_000),
    /**
     * Health Watch calls open at once (each stays open for as long as its client likes); one more is
     * answered RESOURCE_EXHAUSTED (ERR_GRPC_BUSY). Counted apart from maxOpenCalls, so that Watches cannot
     * take the places of Checks.
     */
    maxHealthWatches: z.number().int().min(1).max(1_000_000).default(1000),
    /**
     * A connection holding a unary call whose stream is still open this long after it opened (no grpc-timeout
     * and a message that never ends, or an answer the client's flow control never lets out) is closed
     * (GOAWAY ENHANCE_YOUR_CALM; ERR_CONNECTION_STALLED in verdict_transport_refusals_total): its calls would hold
     * maxOpenCalls' places for ever. Looked at every quarter of it, so such a call goes at 0.75–1× of it.
     */
    maxUnaryCallMs: z
      .number()
      .int()
      .min(1000)
      .max(24 * 3600 * 1000)
      .default(60_000),
    /**
     * A connection must finish its TLS handshake and send its HTTP/2 SETTINGS within this time (each
     * bound on its own), or it is closed: an idle socket costs a descriptor and session memory.
     */
    handshakeTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
    /** Send an HTTP/2 PING on each connection this often; null disables. */
    keepaliveTimeMs: ms.nullable().default(7_200_000),
    /** Close the connection when a keepalive PING is not answered in this time. */
    keepaliveTimeoutMs: ms.default(20_000),
    /** Close (GOAWAY) a connection with no traffic for this long; null keeps it. */
    idleTimeoutMs: ms.nullable().default(null),
    /** Close (GOAWAY) a connection this old (±10% jitter), so clients rebalance; null keeps it. */
    maxConnectionAgeMs: ms.nullable().default(null),
    /** After a max-age GOAWAY, in-flight calls get this long before the connection is destroyed. */
    maxConnectionAgeGraceMs: ms.default(10_000),
  })
  .prefault({});
