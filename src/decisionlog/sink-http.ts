import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { fetchFailureReason } from '../policy/bundle-source';
import { redactURL } from '../policy/bundle-source-http';
import { SinkFailure, type DecisionLogSink, type SinkFailureWhy } from './decision-log-sink';

const gzipAsync = promisify(gzip);

export interface HttpSinkOptions {
  /** The decision-log service endpoint, e.g. http://127.0.0.1:8080/logs (OPA posts to <service>/logs). */
  url: string;
  /** For the answer's status line and headers: the body is never read. */
  timeoutMs: number;
  headers: Record<string, string>;
}

/**
 * Statuses that refuse the batch as sent, so sending it again unchanged cannot succeed: 400 (RFC 9110
 * §15.5.1), 413 (§15.5.14: too large, so halves may pass) and 422 (§15.5.21). Every other failure is about the
 * service or the path to it, and the same batch is retried.
 */
const REFUSES_BATCH: ReadonlySet<number> = new Set([400, 413, 422]);

/** Retry-After longer than this many characters is not a hint (an HTTP-date is 29). */
const MAX_RETRY_AFTER_CHARS = 64;

/**
 * OPA's decision-log service protocol: POST a gzip-compressed JSON array of events
 * (Content-Type: application/json, Content-Encoding: gzip); any 2xx acknowledges the batch. Retries and
 * batching are the shipper's: a failure here rejects with a SinkFailure and the same batch is sent again.
 * The service is not trusted: redirects are not followed (a 303 would turn the POST into a GET that
 * acknowledges nothing sent; a 307 elsewhere would hand the batch and the headers to another host), the answer's
 * body is never read (it may be endless, or a decompression bomb), and no error quotes the URL's query, a
 * header or the body.
 */
export class HttpSink implements DecisionLogSink {
  readonly name = 'http';
  private readonly shownURL: string;

  constructor(private readonly options: HttpSinkOptions) {
    this.shownURL = redactURL(options.url);
  }

  async send(lines: readonly string[], signal: AbortSignal): Promise<void> {
    // The lines are already JSON: joining them is the array, with no re-serialization.
    const body = await gzipAsync(`[${lines.join(',')}]`);
    const deadline = abortAfter(this.options.timeoutMs, signal);
    let res: Response;
    try {
      res = await fetch(this.options.url, {
        method: 'POST',
        headers: { ...this.options.headers, 'content-type': 'application/json', 'content-encoding': 'gzip' },
        body,
        redirect: 'manual',
        signal: deadline.signal,
      });
    } catch (err) {
      throw new SinkFailure(`POST ${this.shownURL}: ${fetchFailureReason(err)}`, transportWhy(err));
    } finally {
      deadline.clear();
    }
    await res.body?.cancel().catch(() => undefined);
    if (res.status >= 200 && res.status <= 299) return;
    throw new SinkFailure(`POST ${this.shownURL}: HTTP ${res.status}`, statusWhy(res.status), retryAfterMs(res.headers.get('retry-after')));
  }

  async close(): Promise<void> {}
}

/**
 * A signal aborted by `outer` or after `ms`. Not AbortSignal.any(AbortSignal.timeout(ms)): the composite holds
 * the timeout signal weakly, and once it is collected the deadline never fires (an upload to a service that
 * never answers then hangs for good). The timer here holds it.
 */
function abortAfter(ms: number, outer: AbortSignal): { signal: AbortSignal; clear(): void } {
  const controller = new AbortController();
  const onOuter = (): void => controller.abort(outer.reason);
  const timer = setTimeout(() => controller.abort(new DOMException(`no answer within ${ms} ms`, 'TimeoutError')), ms);
  if (outer.aborted) onOuter();
  else outer.addEventListener('abort', onOuter, { once: true });
  return {
    signal: controller.signal,
    clear: () => {
      clearTimeout(timer);
      outer.removeEventListener('abort', onOuter);
    },
  };
}

function statusWhy(status: number): SinkFailureWhy {
  if (status >= 300 && status <= 399) return 'redirect';
  if (REFUSES_BATCH.has(status)) return 'refused';
  return status >= 400 && status <= 499 ? 'http_4xx' : 'http_5xx';
}

/** A fetch() that failed before a status: what kind of fault, from undici's cause code (see fetchFailureReason). */
function transportWhy(err: unknown): SinkFailureWhy {
  const e = err as { name?: unknown; cause?: { code?: unknown } } | null;
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return 'timeout';
  const code = typeof e?.cause?.code === 'string' ? e.cause.code : '';
  if (code === 'ENOTFOUND' || code.startsWith('EAI_')) return 'dns';
  if (/CERT|SSL|TLS|SIGNATURE|ALTNAME|ISSUER/.test(code)) return 'tls';
  return 'network';
}

/**
 * RFC 9110 §10.2.3: Retry-After is delay-seconds (digits) or an HTTP-date. Anything else (negative, fractional,
 * garbage, overlong) is no hint; a date in the past is 0. The shipper caps what it waits.
 */
function retryAfterMs(value: string | null, nowMs = Date.now()): number | null {
  const v = value?.trim() ?? '';
  if (v === '' || v.length > MAX_RETRY_AFTER_CHARS) return null;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  if (!/^[A-Za-z]{3}/.test(v)) return null;
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at - nowMs) : null;
}
