import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface ClientTLS {
  ca: string;
  cert?: string;
  key?: string;
  servername?: string;
}

export interface SendOptions {
  method?: string;
  path?: string;
  headers?: Record<string, string | string[]>;
  body?: string;
  tls?: ClientTLS;
  timeoutMs?: number;
}

export interface ClientResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One HTTP(S) request to a loopback port on a fresh connection (so TLS identities never share one). */
export function send(port: number, opts: SendOptions = {}): Promise<ClientResponse> {
  const base = {
    host: '127.0.0.1',
    port,
    method: opts.method ?? 'GET',
    path: opts.path ?? '/',
    headers: { ...(opts.headers ?? {}), ...(opts.body !== undefined ? { 'content-length': String(Buffer.byteLength(opts.body)) } : {}) },
    agent: false as const,
    timeout: opts.timeoutMs ?? 10_000,
  };
  return new Promise((resolve, reject) => {
    const req = opts.tls
      ? httpsRequest({ ...base, ca: opts.tls.ca, cert: opts.tls.cert, key: opts.tls.key, servername: opts.tls.servername ?? 'localhost' })
      : httpRequest(base);
    req.on('timeout', () => req.destroy(new Error(`request to :${port} timed out`)));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.end(opts.body);
  });
}
