import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

export type LogServiceMode = 'ok' | 'fail' | 'stall';

/**
 * A real HTTP decision-log service (OPA's protocol: POST gzip JSON array). Its mode injects the faults a
 * healthy service cannot be made to produce on demand: 'fail' answers 500, 'stall' never answers. A body that
 * is not JSON is refused (400), as a real service does. Only batches it acknowledged (200) count as received.
 */
export class LogService {
  mode: LogServiceMode = 'ok';
  readonly received: { decision_id: string; [k: string]: unknown }[] = [];
  readonly seen: Record<LogServiceMode, number> = { ok: 0, fail: 0, stall: 0 };
  private readonly server: Server;
  private readonly stalled: ServerResponse[] = [];

  constructor() {
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  async start(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/logs`;
  }

  async stop(): Promise<void> {
    for (const r of this.stalled) r.destroy();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const mode = this.mode;
    this.seen[mode]++;
    if (mode === 'fail') return void res.writeHead(500).end('down');
    if (mode === 'stall') return void this.stalled.push(res);
    if (req.method !== 'POST' || req.url !== '/logs' || req.headers['content-encoding'] !== 'gzip') return void res.writeHead(400).end();
    let events: LogService['received'];
    try {
      events = JSON.parse(gunzipSync(Buffer.concat(chunks)).toString('utf8')) as LogService['received'];
    } catch {
      return void res.writeHead(400).end('not a JSON array');
    }
    this.received.push(...events);
    res.writeHead(200).end();
  }
}
