import type * as grpc from '@grpc/grpc-js';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import type { ReflectionTransport } from '../config/sections/reflection-transport';
import type { Metrics } from '../telemetry/metrics';
import { grpcJs } from '../telemetry/grpc-log';
import { loadAuthorizationProtos } from './envoy-protos';
import { listenError } from './listen-error';

/** The counters a refusal of the reflection listener goes to (listener="reflection"). */
export type ReflectionCounters = Pick<Metrics, 'connectionsDropped' | 'transportRefusals'>;

interface Connection {
  socket: Socket;
  /** Calls open on it now. */
  open: number;
  /** Calls that ended without an answer, over its life. */
  unanswered: number;
}

/**
 * gRPC server reflection stays on grpc-js, on a listener of its own (server.reflectionPort, plaintext): it is a
 * debugging aid, not on the Check path, and @grpc/reflection needs grpc-js and the full descriptors. The
 * reflection package, grpc-js and the descriptors are loaded only when reflection is enabled.
 *
 * grpc-js bounds nothing by itself (no session memory or stream bound, no connection bound, connections kept
 * for ever) and @grpc/reflection answers every request without waiting for the last answer to go out, so one
 * client could hold unlimited connections and streams, and a client that never read grew the heap by
 * ~350 bytes per request it sent (200,000 requests: +66 MiB). So (server.reflectionTransport):
 * - the socket is accepted by verdict's own node:net listener (maxConnections, drops counted) and handed to
 *   grpc-js through its connection injector;
 * - grpc-js's own options bound streams per connection, session memory, and how long any connection lives
 *   (max age + grace: a stream never ended, answers never read); a socket on which nothing moves for
 *   idleTimeoutMs is closed (one that never spoke; one whose client stopped reading);
 * - an interceptor passes a call's next request on only once the answer to the last one has been handed to
 *   the stream, so a client that does not read stops being read (HTTP/2 flow control) instead of queuing
 *   answers; and it closes a connection on which maxUnansweredCalls calls ended without an answer (Rapid
 *   Reset: nghttp2 stopped reading such a connection past ~1,100 streams, but its socket stayed),
 *   ERR_GRPC_RESET_FLOOD.
 * Nothing here is shared with the Check listener.
 */
export class ReflectionServer {
  private server: grpc.Server | null = null;
  private listener: NetServer | null = null;
  /** Open connections by what grpc-js tells a call of its connection (remote address and port). */
  private readonly connections = new Map<string, Connection>();

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly transport: ReflectionTransport,
    private readonly counters: ReflectionCounters | null = null,
  ) {}

  async start(): Promise<number> {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on demand; see the class comment
    const { ReflectionService } = require('@grpc/reflection') as typeof import('@grpc/reflection');
    const grpc = grpcJs();
    const t = this.transport;
    const server = new grpc.Server({
      'grpc.max_concurrent_streams': t.maxConcurrentStreams,
      'grpc-node.max_session_memory': t.maxSessionMemoryMb,
      'grpc.max_connection_age_ms': t.maxConnectionAgeMs,
      'grpc.max_connection_age_grace_ms': t.maxConnectionAgeGraceMs,
      interceptors: [this.intercept],
    });
    new ReflectionService(loadAuthorizationProtos()).addToServer(server);
    const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    const listener = createServer((socket) => {
      injector.injectConnection(socket);
      this.track(socket);
    });
    listener.maxConnections = t.maxConnections;
    listener.on('drop', () => this.counters?.connectionsDropped.inc({ listener: 'reflection' }));
    this.server = server;
    this.listener = listener;
    const address = `${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}`;
    return new Promise((resolve, reject) => {
      const failed = (err: Error): void => {
        this.server = null;
        this.listener = null;
        server.forceShutdown();
        reject(listenError(err, address, { host: 'server.grpc.host', port: 'server.reflectionPort' }));
      };
      listener.once('error', failed);
      listener.listen(this.port, this.host, () => {
        listener.off('error', failed);
        resolve((listener.address() as { port: number }).port);
      });
    });
  }

  /**
   * Stops accepting and lets calls in flight finish, for at most maxConnectionAgeGraceMs: a client that keeps
   * a stream open would otherwise hold a graceful shutdown, and with it verdict's stop, for ever.
   */
  stop(): Promise<void> {
    const server = this.server;
    if (!server) return Promise.resolve();
    this.listener?.close();
    return new Promise((resolve) => {
      const force = setTimeout(() => {
        for (const c of this.connections.values()) c.socket.resetAndDestroy();
        server.forceShutdown();
      }, this.transport.maxConnectionAgeGraceMs);
      force.unref();
      server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }

  /**
   * Connections are closed with a TCP reset: once node:http2 has a socket, destroy() leaves the connection
   * open behind a session only grpc-js holds (a silent client was never seen closed).
   */
  private track(socket: Socket): void {
    const key = connectionKey(socket.remoteAddress, socket.remotePort);
    this.connections.set(key, { socket, open: 0, unanswered: 0 });
    socket.on('error', () => undefined); // node:http2's session reports it (a reset: the client's doing)
    socket.once('close', () => this.connections.delete(key));
    // Nothing moved either way for idleTimeoutMs: a socket that never spoke (grpc-js's own idle timeout
    // kept one open for ever), or one holding a call whose client stopped reading (counted). Set after the
    // injection, which sets grpc-js's own (none).
    socket.setTimeout(this.transport.idleTimeoutMs, () => {
      if ((this.connections.get(key)?.open ?? 0) > 0)
        this.counters?.transportRefusals.inc({ listener: 'reflection', code: 'ERR_CONNECTION_STALLED' });
      socket.resetAndDestroy();
    });
  }

  /** Per call: one answer at a time on its way out, and the call counted if it ends without one. */
  private readonly intercept = (_method: unknown, call: grpc.ServerInterceptingCallInterface): grpc.ServerInterceptingCall => {
    const grpc = grpcJs();
    const info = call.getConnectionInfo();
    const key = connectionKey(info.remoteAddress, info.remotePort);
    const connection = this.connections.get(key);
    if (connection) connection.open++;
    let delivered = 0;
    let answered = 0;
    let held: (() => void) | null = null;
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMessage((message, next) => {
        const pass = (): void => {
          delivered++;
          next(message);
        };
        // ServerReflectionInfo answers each request once: a request still unanswered holds back the next.
        if (delivered > answered) held = pass;
        else pass();
      })
      // At the call's end, however it ended: a reset stream reads as a half-close, so what tells is no answer.
      .withOnCancel(() => {
        if (connection) connection.open--;
        if (answered === 0) this.unanswered(key);
      })
      .build();
    const responder = new grpc.ResponderBuilder()
      .withStart((next) => next(listener))
      .withSendMessage((message, next) => {
        // Reached once the stream has taken the answer before it (the call's writes go one at a time).
        answered++;
        next(message);
        const pass = held;
        if (pass && delivered <= answered) {
          held = null;
          pass();
        }
      })
      .build();
    return new grpc.ServerInterceptingCall(call, responder);
  };

  private unanswered(key: string): void {
    const connection = this.connections.get(key);
    if (!connection || ++connection.unanswered < this.transport.maxUnansweredCalls) return;
    this.connections.delete(key);
    this.counters?.transportRefusals.inc({ listener: 'reflection', code: 'ERR_GRPC_RESET_FLOOD' });
    connection.socket.resetAndDestroy();
  }
}

function connectionKey(address: string | undefined, port: number | undefined): string {
  return `${address ?? ''} ${port ?? ''}`;
}
