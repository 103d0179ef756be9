import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { listenError } from './listen-error';
import type { AddressInfo } from 'node:net';
import type { Config } from '../config/schema';
import type { Decision } from '../decision/decision';
import type { DecisionPipeline } from '../decision/decision-pipeline';
import type { KeyValue } from '../policy/policy-result';
import type { ReceivedCheckRequest } from '../request/check-request';
import type { Logger } from '../telemetry/logger';
import type { Metrics } from '../telemetry/metrics';
import { httpAuthzToCheckRequest } from './http-authz-request';

export interface HttpAuthzServerDeps {
  config: Pick<Config, 'httpAuthz' | 'limits' | 'decision'>;
  pipeline: DecisionPipeline;
  metrics: Metrics;
  logger: Logger;
}

/** Envoy's http_service reads this response header as the list of request headers to drop (ext_authz HTTP protocol). */
export const HEADERS_TO_REMOVE_HEADER = 'x-envoy-auth-headers-to-remove';

/**
 * Envoy's HTTP ext_authz protocol: every request is a Check. 200 = allow, its headers go upstream (those
 * Envoy's allowed_upstream_headers admits); anything else = deny, its status, headers and body go to the
 * client. Decisions come from the same DecisionPipeline as gRPC, so both protocols decide alike.
 */
export class HttpAuthzServer {
  private readonly server: Server;
  /** Requests received so far, a running count (src/cli/gc-marking.ts reads it). */
  received = 0;

  constructor(private readonly deps: HttpAuthzServerDeps) {
    this.server = createServer({ requestTimeout: deps.config.httpAuthz.requestTimeoutMs, keepAlive: true }, (req, res) =>
      this.handle(req, res),
    );
    // Envoy pools connections to the authz cluster; keep them longer than its idle timeout default.
    this.server.keepAliveTimeout = 65_000;
    this.server.maxConnections = deps.config.httpAuthz.maxConnections;
    this.server.on('drop', () => deps.metrics.connectionsDropped.inc({ listener: 'http' }));
    // node:http keeps only the first 2,000 header lines by default and drops the rest unseen, which the
    // policy would then not see. All are kept (node's 16 KiB bound on the header block still holds), so
    // limits.maxHeaders, up to 10,000, refuses with ERR_REQUEST_TOO_MANY_HEADERS as on gRPC.
    this.server.maxHeadersCount = 0;
  }

  start(): Promise<number> {
    const { host, port } = this.deps.config.httpAuthz;
    return new Promise((resolve, reject) => {
      this.server.once('error', (err) =>
        reject(listenError(err, `${host}:${port ?? 0}`, { host: 'httpAuthz.host', port: 'httpAuthz.port' })),
      );
      this.server.listen(port ?? 0, host, () => resolve((this.server.address() as AddressInfo).port));
    });
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
      this.server.closeAllConnections();
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.received++;
    const timer = this.deps.metrics.checkDuration.startTimer({ protocol: 'http' });
    readBounded(req, this.deps.config.limits.maxRequestBytes)
      .then(
        ({ body, bodyBytes, overflow }) => {
          const wireBytes = bodyBytes + headerBytes(req);
          const received: ReceivedCheckRequest = overflow
            ? { message: null, wireBytes }
            : { message: httpAuthzToCheckRequest(req, body, this.deps.config.httpAuthz.pathPrefix), wireBytes };
          return Promise.resolve(this.deps.pipeline.check(received, 'http')).then((decision) => this.respond(res, decision));
        },
        (err: unknown) => {
          this.deps.logger.warn({ err }, 'http authz request aborted');
          res.destroy();
        },
      )
      .catch((err: unknown) => {
        // The pipeline turns every failure into a deny; reaching here is a bug. Still fail closed.
        this.deps.logger.error({ err }, 'http authz handler failed');
        if (!res.headersSent) send(res, this.deps.config.decision.errorStatus, [['x-verdict-reason', 'ERR_INTERNAL']], '');
      })
      .finally(() => timer());
  }

  private respond(res: ServerResponse, decision: Decision): void {
    const r = decision.result;
    // Dry run: the policy's deny is logged, the request goes through unchanged.
    if (decision.dryRun) {
      send(res, 200, [], '');
      return;
    }
    if (decision.allowed && r) {
      const headers: KeyValue[] = [...r.headers];
      if (r.requestHeadersToRemove.length > 0) headers.push([HEADERS_TO_REMOVE_HEADER, r.requestHeadersToRemove.join(',')]);
      send(res, 200, headers, '');
      return;
    }
    const headers: KeyValue[] = [...(r?.headers ?? [])];
    const { reasonHeader, exposeReason, denyStatus } = this.deps.config.decision;
    if (exposeReason && reasonHeader !== '') headers.push([reasonHeader, decision.reason]);
    // 200 means allow in this protocol: a deny must never answer it.
    const status = decision.httpStatus === 200 ? denyStatus : decision.httpStatus;
    const body = decision.parseError !== undefined ? `request_parse_error: ${decision.parseError}` : (r?.body ?? '');
    send(res, status, headers, body);
  }
}

interface BodyRead {
  body: string;
  bodyBytes: number;
  /** The body exceeded the bound: it was discarded unread past the bound. */
  overflow: boolean;
}

/** Reads at most maxBytes of body; beyond that the rest is drained and dropped (memory stays bounded). */
function readBounded(req: IncomingMessage, maxBytes: number): Promise<BodyRead> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    let overflow = false;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > maxBytes) {
        overflow = true;
        chunks.length = 0;
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve({ body: overflow ? '' : Buffer.concat(chunks).toString('utf8'), bodyBytes: bytes, overflow }));
    req.on('error', reject);
    req.on('aborted', () => reject(new Error('client aborted')));
  });
}

function headerBytes(req: IncomingMessage): number {
  let n = 0;
  for (const s of req.rawHeaders) n += s.length + 2;
  return n;
}

function send(res: ServerResponse, status: number, headers: readonly KeyValue[], body: string): void {
  const grouped: Record<string, string[]> = {};
  for (const [key, value] of headers) (grouped[key.toLowerCase()] ??= []).push(value);
  res.statusCode = status;
  for (const [key, values] of Object.entries(grouped)) res.setHeader(key, values.length === 1 ? (values[0] as string) : values);
  if (body !== '' && !res.hasHeader('content-type')) res.setHeader('content-type', 'text/plain; charset=utf-8');
  res.end(body);
}
