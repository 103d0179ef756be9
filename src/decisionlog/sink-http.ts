import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { VerdictError } from '../errors';
import type { DecisionLogSink } from './decision-log-sink';

const gzipAsync = promisify(gzip);

export interface HttpSinkOptions {
  /** The decision-log service endpoint, e.g. http://127.0.0.1:8080/logs (OPA posts to <service>/logs). */
  url: string;
  timeoutMs: number;
  headers: Record<string, string>;
}

/**
 * OPA's decision-log service protocol: POST a gzip-compressed JSON array of events
 * (Content-Type: application/json, Content-Encoding: gzip); any 2xx acknowledges the batch. Retries and
 * batching are the shipper's: a failure here rejects and the same batch is sent again.
 */
export class HttpSink implements DecisionLogSink {
  readonly name = 'http';

  constructor(private readonly options: HttpSinkOptions) {}

  async send(lines: readonly string[]): Promise<void> {
    // The lines are already JSON: joining them is the array, with no re-serialization.
    const body = await gzipAsync(`[${lines.join(',')}]`);
    let res: Response;
    try {
      res = await fetch(this.options.url, {
        method: 'POST',
        headers: { ...this.options.headers, 'content-type': 'application/json', 'content-encoding': 'gzip' },
        body,
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (err) {
      throw new VerdictError('ERR_DECISIONLOG_SINK', `POST ${this.options.url}: ${(err as Error).message}`);
    }
    await res.arrayBuffer().catch(() => undefined);
    if (res.status < 200 || res.status > 299)
      throw new VerdictError('ERR_DECISIONLOG_SINK', `POST ${this.options.url}: HTTP ${res.status}`);
  }

  async close(): Promise<void> {}
}
