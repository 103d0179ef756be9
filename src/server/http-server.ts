import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { listenError } from './listen-error';
import { closeStalledConnections } from './stalled-calls';
import type { AddressInfo } from 'node:net';

export interface HttpServerDeps {
  host: string;
  port: number;
  /** Prometheus text for /metrics (one registry, or a cluster's aggregate). */
  metricsText: () => Promise<string>;
  metricsContentType: string;
  /** Ready = a policy is active and the server is not draining. */
  isReady: () => boolean;
  /** A connection was closed as it was accepted: the listener held OPS_MAX_CONNECTIONS. */
  onConnectionDropped: () => void;
  /** A connection was closed with answers its client did not read for OPS_STALLED_MS. */
  onConnectionStalled: () => void;
}

/**
 * Bounds of the operational listener. Its callers are probes and scrapers (a few connections, small GET
 * requests), and node:http's defaults would let anyone who reaches the port hold a descriptor for 60 s
 * with no bytes (300 s with a body that never ends), as many times as they like, until the process has
 * none left for its gRPC listener. So: at most this many connections, the request's headers within 5 s
 * and all of it within 10 s, checked every second, an idle kept-alive connection closed after 5 s, and one
 * whose client stopped reading its answers within 20 s (closeStalledConnections).
 */
const OPS_MAX_CONNECTIONS = 256;
const OPS_TIMEOUTS = { headersTimeout: 5_000, requestTimeout: 10_000, connectionsCheckingInterval: 1_000, keepAliveTimeout: 5_000 };
/** Nothing moving on a connection this long (a scraper that stopped reading /metrics answers): closed. */
const OPS_STALLED_MS = 10_000;

/** Operational endpoints: /healthz (alive), /readyz (can decide), /metrics (Prometheus text). */
export class OpsHttpServer {
  private readonly server: Server;

  constructor(private readonly deps: HttpServerDeps) {
    this.server = createServer(OPS_TIMEOUTS, (req, res) => {
      this.handle(req, res).catch((err: unknown) => send(res, 500, `error: ${(err as Error).message}\n`));
    });
    this.server.maxConnections = OPS_MAX_CONNECTIONS;
    this.server.on('drop', deps.onConnectionDropped);
    closeStalledConnections(this.server, OPS_STALLED_MS, deps.onConnectionStalled);
  }

  start(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', (err) =>
        reject(listenError(err, `${this.deps.host}:${this.deps.port}`, { host: 'server.http.host', port: 'server.http.port' })),
      );
      this.server.listen(this.deps.port, this.deps.host, () => resolve((this.server.address() as AddressInfo).port));
    });
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') return send(res, 405, 'method not allowed\n');
    if (path === '/healthz') return send(res, 200, 'ok\n');
    if (path === '/readyz') return this.deps.isReady() ? send(res, 200, 'ready\n') : send(res, 503, 'not ready\n');
    if (path === '/metrics') {
      const body = await this.deps.metricsText();
      res.setHeader('content-type', this.deps.metricsContentType);
      return send(res, 200, body);
    }
    return send(res, 404, 'not found\n');
  }
}

function send(res: ServerResponse, status: number, body: string): void {
  res.statusCode = status;
  if (!res.hasHeader('content-type')) res.setHeader('content-type', 'text/plain; charset=utf-8');
  res.end(body);
}
