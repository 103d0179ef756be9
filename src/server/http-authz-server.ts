import { STATUS_CODES, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { listenError } from './listen-error';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { VerdictError, toVerdictError, type ErrorCode } from '../errors';
import type { Config } from '../config/schema';
import type { Decision } from '../decision/decision';
import type { DecisionPipeline } from '../decision/decision-pipeline';
import type { KeyValue } from '../policy/policy-result';
import type { ReceivedCheckRequest } from '../request/check-request';
import type { Logger } from '../telemetry/logger';
import type { Metrics } from '../telemetry/metrics';
import { httpAuthzToCheckRequest } from './http-authz-request';
import { closeStalledConnections } from './stalled-calls';

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
    const { requestTimeoutMs, maxConnections, stalledResponseMs } = deps.config.httpAuthz;
    this.server = createServer(
      // node:http looks for late requests every 30 s by default: a body that drips would live that long
      // past requestTimeoutMs. Host is checked with the request (http-authz-request.ts), so its refusal is coded.
      {
        requestTimeout: requestTimeoutMs,
        connectionsCheckingInterval: Math.min(1_000, requestTimeoutMs),
        keepAlive: true,
        requireHostHeader: false,
      },
      (req, res) => this.handle(req, res),
    );
    // Envoy pools connections to the authz cluster; keep them longer than its idle timeout default.
    this.server.keepAliveTimeout = 65_000;
    this.server.maxConnections = maxConnections;
    closeStalledConnections(this.server, stalledResponseMs, () => {
      deps.metrics.transportRefusals.inc({ listener: 'http', code: 'ERR_CONNECTION_STALLED' });
      deps.logger.debug({ code: 'ERR_CONNECTION_STALLED' }, 'http authz connection closed: its answers were not read');
    });
    // What node:http refuses before there is a request to decide (a request line or header block that does
    // not parse, Content-Length with Transfer-Encoding, two Content-Lengths, a bad chunk size, headers over
    // its 16 KiB, a request not whole within requestTimeoutMs) it answers with a bare status; this adds the code.
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.refuseRaw(socket, clientErrorRefusal(err)));
    // CONNECT asks for a tunnel, which this protocol cannot answer; node:http would drop the connection unanswered.
    this.server.on('connect', (_req: IncomingMessage, socket: Duplex) =>
      this.refuseRaw(socket, { status: 405, code: 'ERR_REQUEST_MALFORMED' }),
    );
    // An Expect other than 100-continue (node:http answers 417 without a code, and keeps the connection).
    this.server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) => {
      res.setHeader('connection', 'close');
      this.refused('ERR_REQUEST_MALFORMED', 417);
      send(res, 417, this.reasonHeaders('ERR_REQUEST_MALFORMED'), '');
    });
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
    this.receive(req)
      .then(
        (received) => {
          // Refused before its end: the rest of the body is not read, so the connection cannot carry another request.
          if (received.refusal?.code === 'ERR_REQUEST_TOO_LARGE') res.setHeader('connection', 'close');
          return Promise.resolve(this.deps.pipeline.check(received, 'http')).then((decision) => this.respond(res, decision));
        },
        (err: unknown) => {
          // The client went away mid-request (its doing, as an RST_STREAM is over gRPC): debug, so that no
          // client can add a warning line per connection.
          this.deps.logger.debug({ err: (err as Error).message }, 'http authz request aborted');
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

  /**
   * The request as the pipeline takes it. Over limits.maxRequestBytes (header block and body) it is refused
   * as soon as that is known: from Content-Length before a body byte is read, else at the byte that crosses
   * the bound. 413, as Envoy itself answers a body over its own max_request_bytes.
   */
  private async receive(req: IncomingMessage): Promise<ReceivedCheckRequest> {
    const max = this.deps.config.limits.maxRequestBytes;
    const head = headerBytes(req);
    // node:http has checked Content-Length is digits only (and single); a body without one is chunked.
    const declared = head + Number(req.headers['content-length'] ?? 0);
    if (declared > max) return tooLarge(`request of ${declared} bytes exceeds ${max}`, declared);
    const body = await readBounded(req, max - head);
    if (body === null) return tooLarge(`request of more than ${max} bytes exceeds ${max}`, max + 1);
    const wireBytes = head + body.length;
    try {
      return { message: httpAuthzToCheckRequest(req, body, this.deps.config.httpAuthz.pathPrefix), wireBytes };
    } catch (err) {
      return { message: null, wireBytes, refusal: toVerdictError(err, 'ERR_REQUEST_MALFORMED') };
    }
  }

  /** The reason header on a refusal, as on every deny (decision.reasonHeader, decision.exposeReason). */
  private reasonHeaders(code: ErrorCode): KeyValue[] {
    const { reasonHeader, exposeReason } = this.deps.config.decision;
    return exposeReason && reasonHeader !== '' ? [[reasonHeader, code]] : [];
  }

  /** A request refused before it could be decided: counted by code, logged at debug (a client can repeat it). */
  private refused(code: ErrorCode, status: number): void {
    this.deps.metrics.transportRefusals.inc({ listener: 'http', code });
    this.deps.logger.debug({ code, status }, 'http authz request refused before it could be decided');
  }

  /** A refusal written straight to the socket (there is no ServerResponse for it), then the connection closed. */
  private refuseRaw(socket: Duplex, { status, code }: RawRefusal): void {
    this.refused(code, status);
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const reason = this.reasonHeaders(code).map(([k, v]) => `${k}: ${v}\r\n`);
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n${reason.join('')}connection: close\r\ncontent-length: 0\r\n\r\n`);
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

interface RawRefusal {
  status: number;
  code: ErrorCode;
}

/** node:http's clientError codes: its parser's (HPE_*), and its own request deadline. */
function clientErrorRefusal(err: NodeJS.ErrnoException): RawRefusal {
  if (err.code === 'HPE_HEADER_OVERFLOW') return { status: 431, code: 'ERR_REQUEST_TOO_LARGE' };
  if (err.code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW') return { status: 413, code: 'ERR_REQUEST_TOO_LARGE' };
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return { status: 408, code: 'ERR_REQUEST_TIMEOUT' };
  return { status: 400, code: 'ERR_REQUEST_MALFORMED' };
}

function tooLarge(message: string, wireBytes: number): ReceivedCheckRequest {
  return { message: null, wireBytes, refusal: new VerdictError('ERR_REQUEST_TOO_LARGE', message, { httpStatus: 413 }) };
}

/** The body, or null as soon as it passes maxBytes (nothing past the bound is kept). */
function readBounded(req: IncomingMessage, maxBytes: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const onData = (chunk: Buffer): void => {
      bytes += chunk.length;
      if (bytes <= maxBytes) {
        chunks.push(chunk);
        return;
      }
      chunks.length = 0;
      req.off('data', onData);
      resolve(null);
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks)));
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
  for (const [key, values] of Object.entries(grouped)) {
    const wire = values.map(latin1Wire);
    res.setHeader(key, wire.length === 1 ? (wire[0] as string) : wire);
  }
  if (body !== '' && !res.hasHeader('content-type')) res.setHeader('content-type', 'text/plain; charset=utf-8');
  res.end(body);
}

/**
 * node:http writes header strings one byte per character (latin1); a policy's header value is text, which
 * Envoy's CheckResponse carries as UTF-8. So its UTF-8 bytes go on the wire, as over gRPC.
 */
function latin1Wire(value: string): string {
  return /[\u0080-\uffff]/.test(value) ? Buffer.from(value, 'utf8').toString('latin1') : value;
}
