import { isUtf8 } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import { VerdictError } from '../errors';
import type { CheckRequest, HttpRequest } from '../request/check-request';

/**
 * Envoy's HTTP ext_authz protocol (http_service) forwards the client's method, path (behind path_prefix),
 * the allowed headers and, with with_request_body, the body. This rebuilds the CheckRequest the gRPC
 * protocol would have carried, so DecisionPipeline decides both the same way. What HTTP mode cannot
 * carry (the downstream peer's address, principal and certificate, context_extensions) stays absent.
 * A body that is UTF-8 is `body`; any other is `rawBody`, as Envoy's pack_as_bytes sends it (the gRPC
 * protocol refuses a `body` string that is not UTF-8, so no bytes are lost or replaced here either).
 */
export function httpAuthzToCheckRequest(req: IncomingMessage, body: Buffer, pathPrefix: string): CheckRequest {
  const method = req.method ?? 'GET';
  const path = stripPrefix(req.url ?? '/', pathPrefix);
  const headers = headerMap(req);
  const host = headers[':authority'];
  // RFC 9112 §3.2: a request of HTTP/1.1 carries exactly one Host (node:http would answer 400 uncoded).
  if (host === undefined && req.httpVersion === '1.1') throw new VerdictError('ERR_REQUEST_MALFORMED', 'an HTTP/1.1 request without Host');
  const http: HttpRequest = {
    method,
    path,
    host: host ?? '',
    scheme: headers['x-forwarded-proto'] ?? 'http',
    protocol: `HTTP/${req.httpVersion}`,
    headers,
  };
  const id = headers['x-request-id'];
  if (id !== undefined) http.id = id;
  if (body.length > 0) {
    if (isUtf8(body)) http.body = body.toString('utf8');
    else http.rawBody = body.toString('base64');
    http.size = body.length;
  }
  headers[':method'] = method;
  headers[':path'] = path;
  return {
    attributes: {
      source: { address: { socketAddress: socketAddress(req.socket.remoteAddress, req.socket.remotePort) } },
      destination: { address: { socketAddress: socketAddress(req.socket.localAddress, req.socket.localPort) } },
      request: { time: timestampNow(), http },
    },
  };
}

/** google.protobuf.Timestamp as the decoder gives it (protomap: zero parts absent). */
function timestampNow(): { seconds?: number; nanos?: number } {
  const ms = Date.now();
  const seconds = Math.floor(ms / 1000);
  const nanos = (ms - seconds * 1000) * 1e6;
  return { ...(seconds !== 0 ? { seconds } : {}), ...(nanos !== 0 ? { nanos } : {}) };
}

/**
 * Envoy sends `path_prefix` followed by the original path, which starts with "/": anything else did not come
 * from Envoy with this prefix, and its path cannot be recovered (it was evaluated as sent, and "/authzfoo"
 * became "/foo"), so it is refused.
 */
function stripPrefix(url: string, prefix: string): string {
  if (prefix === '') return url;
  const rest = url.startsWith(prefix) ? url.slice(prefix.length) : null;
  if (rest === null || !rest.startsWith('/'))
    throw new VerdictError('ERR_REQUEST_MALFORMED', 'the request path does not start with httpAuthz.pathPrefix followed by "/"');
  return rest;
}

/** Lower-case keys as Envoy's CheckRequest has them; repeated headers joined with "," (RFC 9110 §5.3). */
function headerMap(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const key = (raw[i] as string).toLowerCase();
    const value = utf8Value(raw[i + 1] as string);
    const name = key === 'host' ? ':authority' : key;
    const prev = out[name];
    if (prev !== undefined && name === ':authority') throw new VerdictError('ERR_REQUEST_MALFORMED', 'more than one Host header');
    out[name] = prev === undefined ? value : `${prev},${value}`;
  }
  return out;
}

/**
 * node:http gives a header value one character per byte (latin1). Envoy's CheckRequest carries UTF-8
 * strings, and the gRPC protocol refuses one that is not (ERR_REQUEST_MALFORMED), so the bytes are read
 * as UTF-8 here, and refused alike: otherwise a policy would see "Ã©" where the client sent "é".
 */
function utf8Value(value: string): string {
  if (!/[\u0080-\uffff]/.test(value)) return value;
  const bytes = Buffer.from(value, 'latin1');
  if (!isUtf8(bytes)) throw new VerdictError('ERR_REQUEST_MALFORMED', 'a request header value is not valid UTF-8');
  return bytes.toString('utf8');
}

function socketAddress(address: string | undefined, port: number | undefined): { address?: string; portValue?: number } {
  return { ...(address !== undefined ? { address } : {}), ...(port !== undefined ? { portValue: port } : {}) };
}
