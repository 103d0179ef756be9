import type { IncomingMessage } from 'node:http';
import type { CheckRequest, HttpRequest } from '../request/check-request';

/**
 * Envoy's HTTP ext_authz protocol (http_service) forwards the client's method, path (behind path_prefix),
 * the allowed headers and, with with_request_body, the body. This rebuilds the CheckRequest the gRPC
 * protocol would have carried, so DecisionPipeline decides both the same way. What HTTP mode cannot
 * carry (the downstream peer's address, principal and certificate, context_extensions) stays absent.
 */
export function httpAuthzToCheckRequest(req: IncomingMessage, body: string, pathPrefix: string): CheckRequest {
  const method = req.method ?? 'GET';
  const path = stripPrefix(req.url ?? '/', pathPrefix);
  const headers = headerMap(req);
  const host = headers[':authority'] ?? '';
  const http: HttpRequest = {
    method,
    path,
    host,
    scheme: headers['x-forwarded-proto'] ?? 'http',
    protocol: `HTTP/${req.httpVersion}`,
    headers,
  };
  const id = headers['x-request-id'];
  if (id !== undefined) http.id = id;
  if (body !== '') {
    http.body = body;
    http.size = Buffer.byteLength(body);
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

function stripPrefix(url: string, prefix: string): string {
  if (prefix === '' || !url.startsWith(prefix)) return url;
  const rest = url.slice(prefix.length);
  return rest.startsWith('/') ? rest : `/${rest}`;
}

/** Lower-case keys as Envoy's CheckRequest has them; repeated headers joined with "," (RFC 9110 §5.3). */
function headerMap(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const key = (raw[i] as string).toLowerCase();
    const value = raw[i + 1] as string;
    const name = key === 'host' ? ':authority' : key;
    const prev = out[name];
    out[name] = prev === undefined ? value : `${prev},${value}`;
  }
  return out;
}

function socketAddress(address: string | undefined, port: number | undefined): { address?: string; portValue?: number } {
  return { ...(address !== undefined ? { address } : {}), ...(port !== undefined ? { portValue: port } : {}) };
}
