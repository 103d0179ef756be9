import http2, { type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import { systemClock, type Clock } from '../clock';
import type { Config } from '../config/schema';
import type { ErrorCode } from '../errors';
import type { Decision } from '../decision/decision';
import type { DecisionPipeline } from '../decision/decision-pipeline';
import { decodeCheckRequest } from '../request/check-request-decoder';
import type { HistogramChild } from '../telemetry/counting-histogram';
import { LogThrottle } from '../telemetry/log-throttle';
import type { Logger } from '../telemetry/logger';
import type { Metrics } from '../telemetry/metrics';
import { encodeCheckResponseMessage } from './check-response-encoder';
import { CachedResponseEncoder } from './cached-response-encoder';
import { AUTHORIZATION_SERVICE } from './envoy-protos';
import { GrpcCall, type GrpcCallOptions, type MessageEncoding, type ReceivedMessage } from './grpc-call';
import { refuse, type BufferBudget, type Refusal } from './grpc-message-reader';
import { GrpcStatus } from './grpc-status';
import { listenError } from './listen-error';
import { parseGrpcTimeoutMs } from './grpc-timeout';
import { decodeHealthRequest, HealthService } from './health-service';
import { ReflectionServer } from './reflection-server';
import type { CallerVerdict, ServerTLS } from './server-tls';
import { applySessionLifetime } from './session-lifetime';
import { StalledCalls } from './stalled-calls';

export interface GrpcServerDeps {
  config: Config;
  pipeline: DecisionPipeline;
  metrics: Metrics;
  logger: Logger;
  /** TLS material (mTLS with verdict's SVID when configured); plaintext h2c otherwise. */
  tls?: ServerTLS;
  /** For the expiry of cached per-connection caller verdicts. */
  clock?: Clock;
}

export interface BoundAddresses {
  /** TCP port actually bound (the config may say 0). */
  port: number;
  unixSocket: string | null;
}

const CHECK_PATH = `/${AUTHORIZATION_SERVICE}/Check`;
const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';
const HEALTH_WATCH_PATH = '/grpc.health.v1.Health/Watch';
// PROTOCOL-HTTP2.md Content-Type: "application/grpc" [("+proto" / "+json" / {custom})]; verdict speaks proto.
const GRPC_CONTENT_TYPE = /^application\/grpc(\+proto)?(;|$)/;
const GRPC_PLAIN_CONTENT_TYPE = 'application/grpc';
const ENCODINGS = new Set<string>(['identity', 'gzip', 'deflate']);
// Requests over the limit but within max(4×, 4 MiB) are counted unread and denied with a coded reason (a
// CheckResponse Envoy can show); beyond that the call is refused outright (RESOURCE_EXHAUSTED; Envoy fails closed).
const HARD_LIMIT_FACTOR = 4;
const HARD_LIMIT_FLOOR_BYTES = 4 * 1024 * 1024;
/** A call past server.transport.maxOpenCalls: Trailers-Only RESOURCE_EXHAUSTED. */
const BUSY_TRAILERS_ONLY = Object.freeze({
  ':status': 200,
  'content-type': 'application/grpc',
  'grpc-status': String(GrpcStatus.RESOURCE_EXHAUSTED),
  'grpc-message': 'ERR_GRPC_BUSY',
});

type Handler = (call: GrpcCall, message: ReceivedMessage) => void;

interface CachedCaller {
  generation: number;
  verdict: CallerVerdict;
}

/**
 * verdict's gRPC edge on node:http2, written against grpc/grpc doc/PROTOCOL-HTTP2.md (docs/transport.md):
 * envoy.service.auth.v3.Authorization/Check and grpc.health.v1.Health/{Check,Watch}. Everything else is
 * refused at the door: wrong content-type (415), unknown method (UNIMPLEMENTED, trailers-only), bad
 * grpc-timeout or grpc-encoding, a message over the limit (judged from its 5-byte prefix before a byte of
 * it is buffered), zero or two messages. With mTLS the caller is checked once per connection.
 */
export class GrpcServer {
  private readonly servers: (http2.Http2Server | http2.Http2SecureServer)[] = [];
  private readonly sessions = new Set<ServerHttp2Session>();
  private readonly callers = new WeakMap<ServerHttp2Session, CachedCaller>();
  private readonly watches = new Set<GrpcCall>();
  private readonly health = new HealthService(['', AUTHORIZATION_SERVICE]);
  private readonly routes: ReadonlyMap<string, Handler>;
  /** server.grpc.maxSendMessageBytes: what goes out instead of a CheckResponse over the bound (encoded once). */
  private readonly tooLargeResponse: Buffer;
  private readonly budget: BufferBudget;
  private readonly callOptions: GrpcCallOptions;
  private readonly responses: CachedResponseEncoder;
  private readonly clock: Clock;
  private readonly tooLargeLog: LogThrottle;
  private readonly reflection: ReflectionServer | null;
  /** verdict_check_duration_seconds{protocol="grpc"}, bound once (no label handling per Check). */
  private readonly checkDuration: HistogramChild;
  private stopping = false;
  /** Streams opened so far, a running count (the GC marking cadence reads it: src/cli/gc-marking.ts). */
  received = 0;
  /** Unary calls whose stream has not closed, answered or not (`open`, bounded by maxOpenCalls), by connection. */
  private readonly unary: StalledCalls;
  /** Health Watch calls open (bounded by server.transport.maxHealthWatches). */
  private openWatches = 0;
  private readonly watchClosed = (): void => void this.openWatches--;

  constructor(private readonly deps: GrpcServerDeps) {
    this.tooLargeResponse = this.encodeTooLargeDeny();
    const { reasonHeader, exposeReason } = deps.config.decision;
    this.responses = new CachedResponseEncoder({ reasonHeader, exposeReason });
    this.clock = deps.clock ?? systemClock;
    this.tooLargeLog = new LogThrottle(this.clock, 60_000);
    this.checkDuration = deps.metrics.checkDuration.bind({ protocol: 'grpc' });
    this.budget = byteBudget(deps.config.server.transport.maxBufferedBytes);
    const max = deps.config.limits.maxRequestBytes;
    this.callOptions = {
      maxBytes: max,
      hardMaxBytes: Math.max(max * HARD_LIMIT_FACTOR, HARD_LIMIT_FLOOR_BYTES),
      budget: this.budget,
      onRefused: (r) => this.refused(r.code, r.why),
    };
    this.unary = new StalledCalls(
      deps.config.server.transport.maxUnaryCallMs,
      this.sessions,
      (session) => this.closeAbusive(session, 'ERR_CONNECTION_STALLED', 'a unary call open past server.transport.maxUnaryCallMs'),
      (session) => this.closeAbusive(session, 'ERR_GRPC_RESET_FLOOD', 'calls reset before their answers past the bound'),
    );
    this.routes = new Map<string, Handler>([
      [CHECK_PATH, this.check],
      [HEALTH_CHECK_PATH, this.healthCheck],
      [HEALTH_WATCH_PATH, this.healthWatch],
    ]);
    this.reflection = deps.config.server.reflection
      ? new ReflectionServer(
          deps.config.server.grpc.host,
          deps.config.server.reflectionPort,
          deps.config.server.reflectionTransport,
          deps.metrics,
        )
      : null;
  }

  /** Health of '' and of the Authorization service; Watch streams see each change. */
  setServing(serving: boolean): void {
    const status = serving ? 'SERVING' : 'NOT_SERVING';
    this.health.setStatus('', status);
    this.health.setStatus(AUTHORIZATION_SERVICE, status);
  }

  async start(): Promise<BoundAddresses> {
    const { grpc: listen } = this.deps.config.server;
    const address = `${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${listen.port}`;
    try {
      const port = await listenOn(this.createServer(), { host: listen.host, port: listen.port }).catch((err: unknown) =>
        Promise.reject(listenError(err, address, { host: 'server.grpc.host', port: 'server.grpc.port' })),
      );
      if (listen.unixSocket) {
        const socket = listen.unixSocket;
        await listenOn(this.createServer(), { path: socket }).catch((err: unknown) =>
          Promise.reject(listenError(err, socket, { path: 'server.grpc.unixSocket' })),
        );
      }
      await this.reflection?.start();
      this.unary.start();
      return { port, unixSocket: listen.unixSocket };
    } catch (err) {
      // A listener that did bind is not left open behind a start that failed (an embedder keeps running).
      for (const s of this.servers) s.close();
      throw err;
    }
  }

  /**
   * Stop accepting; GOAWAY every connection (in-flight calls finish, new streams are refused); Watch
   * streams end with UNAVAILABLE; connections still open after graceMs are destroyed.
   */
  async stop(graceMs: number): Promise<void> {
    this.setServing(false);
    this.stopping = true;
    this.unary.stop();
    for (const w of this.watches) w.finish(GrpcStatus.UNAVAILABLE);
    const closed = this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    for (const s of this.sessions) s.close();
    const drained = Promise.all(closed).then(() => true);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), graceMs);
    });
    const inTime = await Promise.race([drained, late]);
    clearTimeout(timer);
    if (!inTime) {
      this.deps.logger.warn({ graceMs, connections: this.sessions.size }, 'grace period over, closing remaining calls');
      for (const s of this.sessions) s.destroy();
      await drained;
    }
    await this.reflection?.stop();
  }

  private createServer(): http2.Http2Server | http2.Http2SecureServer {
    const t = this.deps.config.server.transport;
    const options: http2.ServerOptions = {
      maxSessionMemory: t.maxSessionMemoryMb,
      maxHeaderListPairs: t.maxHeaderListPairs,
      settings: { maxConcurrentStreams: t.maxConcurrentStreams, maxHeaderListSize: t.maxHeaderListBytes },
    };
    const tls = this.deps.tls;
    const server = tls ? this.createSecureServer(options, tls) : http2.createServer(options);
    server.maxConnections = t.maxConnections;
    server.on('drop', this.onDrop);
    server.on('session', this.onSession);
    server.on('stream', this.onStream);
    server.on('sessionError', (err) => this.deps.logger.debug({ err: err.message }, 'HTTP/2 session error'));
    this.servers.push(server);
    return server;
  }

  private createSecureServer(options: http2.ServerOptions, tls: ServerTLS): http2.Http2SecureServer {
    const server = http2.createSecureServer({
      ...options,
      ...(tls.contextOptions() ?? {}),
      handshakeTimeout: this.deps.config.server.transport.handshakeTimeoutMs,
      requestCert: tls.requireClientCertificate,
      rejectUnauthorized: tls.requireClientCertificate,
      allowHTTP1: false,
    });
    // SVID rotation: new handshakes use the new material; open connections keep theirs.
    tls.onContextChange((ctx) => server.setSecureContext(ctx));
    server.on('tlsClientError', (err) => this.deps.logger.debug({ err: err.message }, 'TLS handshake refused'));
    return server;
  }

  private readonly onDrop = (): void => this.deps.metrics.connectionsDropped.inc({ listener: 'grpc' });

  /** A call refused before a decision: counted by code (a bounded set), logged at debug (a caller can repeat it). */
  private refused(code: ErrorCode, why: string): void {
    this.deps.metrics.transportRefusals.inc({ listener: 'grpc', code });
    this.deps.logger.debug({ code, why }, 'gRPC call refused');
  }

  private readonly onSession = (session: ServerHttp2Session): void => {
    if (this.stopping) {
      session.close();
      return;
    }
    this.sessions.add(session);
    session.once('close', () => this.sessions.delete(session));
    session.on('error', (err) => this.deps.logger.debug({ err: err.message }, 'HTTP/2 session error'));
    applySessionLifetime(session, this.deps.config.server.transport);
  };

  /**
   * A connection closed for what its client did (a unary call open past maxUnaryCallMs, calls reset faster
   * than StalledCalls' bound): GOAWAY ENHANCE_YOUR_CALM, then destroyed, which frees every place it held.
   */
  private closeAbusive(session: ServerHttp2Session, code: ErrorCode, why: string): void {
    this.refused(code, why);
    session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    session.destroy();
  }

  private readonly onStreamError = (err: Error): void => this.deps.logger.debug({ err: err.message }, 'HTTP/2 stream error');

  private readonly onStream = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void => {
    this.received++;
    stream.on('error', this.onStreamError);
    const contentType = headers['content-type'];
    // Envoy and gRPC clients send exactly "application/grpc": a string compare spares the regular expression.
    const grpc = contentType === GRPC_PLAIN_CONTENT_TYPE || (contentType !== undefined && GRPC_CONTENT_TYPE.test(contentType));
    if (headers[':method'] !== 'POST' || !grpc) {
      // PROTOCOL-HTTP2.md: a content-type not starting with application/grpc gets HTTP 415, so that no HTTP
      // client takes a gRPC error (status 200) for success.
      stream.respond(
        { ':status': 415, 'grpc-status': String(GrpcStatus.INTERNAL), 'grpc-message': 'ERR_GRPC_CONTENT_TYPE' },
        { endStream: true },
      );
      this.refused('ERR_GRPC_CONTENT_TYPE', `${String(headers[':method'])} with content-type ${String(contentType).slice(0, 64)}`);
      return;
    }
    // The path is looked up once (a Map lookup hashes the whole 45-character string); Check is compared first.
    const path = headers[':path'];
    const handler = path === CHECK_PATH ? this.check : (this.routes.get(path ?? '') ?? null);
    const transport = this.deps.config.server.transport;
    const watch = handler === this.healthWatch;
    if (watch ? this.openWatches >= transport.maxHealthWatches : this.unary.open >= transport.maxOpenCalls) {
      // Before any call state exists: RESOURCE_EXHAUSTED as Trailers-Only, the stream closed at once.
      stream.respond(BUSY_TRAILERS_ONLY, { endStream: true });
      if (!stream.readableEnded) stream.close(http2.constants.NGHTTP2_NO_ERROR);
      this.refused(
        'ERR_GRPC_BUSY',
        watch ? 'Health Watches at server.transport.maxHealthWatches' : 'open calls at server.transport.maxOpenCalls',
      );
      return;
    }
    if (watch) this.openWatches++;
    const timeoutMs = parseGrpcTimeoutMs(headers['grpc-timeout']);
    const encoding = headers['grpc-encoding'];
    const call = new GrpcCall(
      stream,
      headers,
      this.callOptions,
      (typeof encoding === 'string' && ENCODINGS.has(encoding) ? encoding : 'identity') as MessageEncoding,
      timeoutMs !== undefined && !Number.isNaN(timeoutMs) ? timeoutMs : undefined,
      handler ?? this.unimplemented,
      watch ? this.watchClosed : this.unary.opened(stream),
    );
    const refusal = this.admit(stream, headers, handler !== null, timeoutMs);
    if (refusal) call.refuse(refusal);
  };

  /** Refusals decided from the headers alone: unknown method, caller, grpc-encoding, grpc-timeout. */
  private admit(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, routed: boolean, timeoutMs: number | undefined): Refusal | null {
    if (!routed) return refuse(GrpcStatus.UNIMPLEMENTED, 'ERR_GRPC_UNIMPLEMENTED', `no method ${headers[':path']}`);
    const caller = stream.session ? this.callerOf(stream.session as ServerHttp2Session) : null;
    if (caller && !caller.ok) return refuse(GrpcStatus.PERMISSION_DENIED, caller.code, 'mTLS caller refused');
    const encoding = headers['grpc-encoding'];
    if (encoding !== undefined && !ENCODINGS.has(encoding as string)) {
      // compression.md: an unsupported encoding is UNIMPLEMENTED (grpc-accept-encoding names what is).
      return refuse(GrpcStatus.UNIMPLEMENTED, 'ERR_GRPC_ENCODING', `grpc-encoding ${String(encoding)}`);
    }
    if (Number.isNaN(timeoutMs)) return refuse(GrpcStatus.INTERNAL, 'ERR_GRPC_TIMEOUT_HEADER', 'malformed grpc-timeout');
    return null;
  }

  /**
   * The mTLS caller verdict of a connection, computed on its first call and cached on the session until
   * the trust bundle / allow-list generation moves or the caller's SVID expires. null: no caller check.
   */
  private callerOf(session: ServerHttp2Session): CallerVerdict | null {
    const check = this.deps.tls?.callers;
    if (!check) return null;
    const nowMs = this.clock.nowMs();
    const cached = this.callers.get(session);
    if (cached && cached.generation === check.generation && (!cached.verdict.ok || nowMs < cached.verdict.validUntilMs))
      return cached.verdict;
    const verdict = check.verify(presentedChain(session.socket as TLSSocket), nowMs);
    this.callers.set(session, { generation: check.generation, verdict });
    return verdict;
  }

  private readonly unimplemented: Handler = (call) => call.finish(GrpcStatus.UNIMPLEMENTED, 'ERR_GRPC_UNIMPLEMENTED');

  private readonly check: Handler = (call, message) => {
    const startedNs = process.hrtime.bigint();
    const { limits, tracing } = this.deps.config;
    const received =
      message.kind === 'message' ? decodeCheckRequest(message.bytes, limits) : { message: null, wireBytes: message.wireBytes };
    // Envoy's ext_authz client span travels in the call's own headers (read only when tracing is on).
    const callHeaders = tracing.enabled ? (call.headers as Readonly<Record<string, string>>) : undefined;
    let decided: Decision | Promise<Decision>;
    try {
      decided = this.deps.pipeline.check(received, 'grpc', callHeaders);
    } catch (err) {
      return this.failCheck(call, startedNs, err);
    }
    // A decision made in this turn (a cache hit) is answered without a closure.
    if (!(decided instanceof Promise)) return this.answerCheck(call, startedNs, decided);
    decided.then(
      (d) => this.answerCheck(call, startedNs, d),
      (err: unknown) => this.failCheck(call, startedNs, err),
    );
  };

  private answerCheck(call: GrpcCall, startedNs: bigint, decision: Decision): void {
    call.sendUnaryFramed(this.bounded(this.responses.encode(decision)));
    this.observeCheck(startedNs);
  }

  private failCheck(call: GrpcCall, startedNs: bigint, err: unknown): void {
    // The pipeline turns every failure into a deny; reaching here is a bug. Still fail closed.
    this.deps.logger.error({ err }, 'decision pipeline threw');
    call.finish(GrpcStatus.INTERNAL, 'ERR_INTERNAL');
    this.observeCheck(startedNs);
  }

  private observeCheck(startedNs: bigint): void {
    this.checkDuration.observe(Number(process.hrtime.bigint() - startedNs) / 1e9);
  }

  /**
   * server.grpc.maxSendMessageBytes (the peer's max send message size): a response over the bound is
   * replaced by a small coded deny, so the answer is still a deny Envoy understands.
   */
  private bounded(framed: Buffer): Buffer {
    const maxSend = this.deps.config.server.grpc.maxSendMessageBytes;
    if (framed.length - 5 <= maxSend) return framed;
    const reason = 'ERR_RESPONSE_TOO_LARGE';
    this.deps.metrics.decisions.inc({ result: 'deny', engine: 'none', reason });
    // A policy that echoes the request makes this as often as callers send large requests: counted above, logged at most once a minute.
    const held = this.tooLargeLog.admit(reason);
    if (held !== null)
      this.deps.logger.warn(
        { code: reason, bytes: framed.length - 5, maxSend, notLoggedSinceLast: held },
        'CheckResponse too large: sent a deny instead',
      );
    return this.tooLargeResponse;
  }

  private encodeTooLargeDeny(): Buffer {
    const { reasonHeader, exposeReason, errorStatus } = this.deps.config.decision;
    const reason = 'ERR_RESPONSE_TOO_LARGE';
    return encodeCheckResponseMessage({
      status: exposeReason ? { code: GrpcStatus.PERMISSION_DENIED, message: reason } : { code: GrpcStatus.PERMISSION_DENIED },
      deniedResponse: {
        status: { code: errorStatus },
        headers: exposeReason && reasonHeader !== '' ? [{ header: { key: reasonHeader, value: reason } }] : [],
      },
    });
  }

  private readonly healthCheck: Handler = (call, message) => {
    const service = message.kind === 'message' ? decodeHealthRequest(message.bytes) : null;
    if (service === null) return call.finish(GrpcStatus.INVALID_ARGUMENT, 'ERR_GRPC_FRAME');
    const answer = this.health.check(service);
    if (answer === null) return call.finish(GrpcStatus.NOT_FOUND);
    call.sendUnary(answer);
  };

  private readonly healthWatch: Handler = (call, message) => {
    const service = message.kind === 'message' ? decodeHealthRequest(message.bytes) : null;
    if (service === null) return call.finish(GrpcStatus.INVALID_ARGUMENT, 'ERR_GRPC_FRAME');
    if (this.stopping) return call.finish(GrpcStatus.UNAVAILABLE);
    this.watches.add(call);
    const unwatch = this.health.watch(service, (m) => call.write(m));
    const done = (): void => {
      unwatch();
      this.watches.delete(call);
    };
    call.onCancel(done);
    call.stream.once('close', done);
  };
}

function listenOn(
  server: http2.Http2Server | http2.Http2SecureServer,
  where: { host: string; port: number } | { path: string },
): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(where, () => {
      server.off('error', reject);
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : 0);
    });
  });
}

const MAX_PRESENTED_CERTIFICATES = 16;

/**
 * The chain the client presented, leaf first (DER). `getPeerCertificate(true)` walks the certificates the
 * peer sent, then the local CA store; the caller check builds and validates the path itself, so extra
 * certificates only add candidates. Read once per connection.
 */
function presentedChain(socket: TLSSocket): Buffer[] {
  const out: Buffer[] = [];
  const seen = new Set<string>();
  for (
    let c: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
    c?.raw && out.length < MAX_PRESENTED_CERTIFICATES;
    c = c.issuerCertificate
  ) {
    if (seen.has(c.fingerprint256)) break; // a self-signed root points at itself
    seen.add(c.fingerprint256);
    out.push(c.raw);
  }
  return out;
}

/** One process-wide cap on request bytes buffered at once, across all connections and streams. */
function byteBudget(maxBytes: number): BufferBudget {
  let used = 0;
  return {
    reserve(bytes) {
      if (used + bytes > maxBytes) return false;
      used += bytes;
      return true;
    },
    release(bytes) {
      used -= bytes;
    },
  };
}
