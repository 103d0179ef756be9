import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface UpstreamHit {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  /** Every header line as received (keeps repeated headers apart). */
  rawHeaders: string[];
  body: string;
}

export interface EchoUpstream {
  port: number;
  /** Requests received, oldest first. */
  hits: UpstreamHit[];
  stop(): Promise<void>;
}

/** The app behind Envoy: records each request and echoes it back as JSON (bodies capped at 64 KiB). */
export async function startEchoUpstream(): Promise<EchoUpstream> {
  const hits: UpstreamHit[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 64 * 1024) chunks.push(c);
    });
    req.on('end', () => {
      const hit: UpstreamHit = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      hits.push(hit);
      const body = JSON.stringify(hit);
      res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'echo' });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    hits,
    stop: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
