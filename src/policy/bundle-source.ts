import { VerdictError } from '../errors';
import type { BundleArtifact } from './bundle';
import type { StagedBundle } from './bundle-staged';

/**
 * What a source delivers (and the persisted bundle is): the bundle file staged in a bundle worker
 * (bundle-staged.ts), never bytes on the event loop — one way in for every source.
 */
export type StagedArtifact = BundleArtifact & { bytes: StagedBundle };

/**
 * Where bundles come from. The loader asks for the bundle, then waits for the source to say a new one
 * may be there (a file changed, a poll is due). Sources only deliver bytes; trust is the verifier's job.
 */
export interface BundleSource {
  /** For logs: no secrets (no auth header). */
  readonly description: string;
  /** The bundle if it changed since the last successful fetch, else null. Throws ERR_BUNDLE_SOURCE when unreachable. */
  fetch(): Promise<StagedArtifact | null>;
  /** Resolves when the next fetch is due; `failed` says the last fetch failed (a source may back off). */
  waitForChange(signal: AbortSignal, failed: boolean): Promise<void>;
  close(): void;
}

/** A random delay in [minMs, maxMs] (OPA's polling: spread clients so they do not poll in step). */
export function jitteredDelayMs(minMs: number, maxMs: number, random: () => number = Math.random): number {
  const lo = Math.min(minMs, maxMs);
  return lo + Math.floor(random() * (Math.max(minMs, maxMs) - lo + 1));
}

/** Resolves after `ms`, or at once when aborted (never rejects). */
export function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * Why a fetch() or its body failed, for a log line: undici throws TypeError("fetch failed") with the reason
 * in `cause` (a system error's code such as ECONNREFUSED, or a message such as "redirect count exceeded"),
 * and a deadline is an AbortSignal's TimeoutError. At most 200 characters, and never the error's own message,
 * which may quote the URL and the credentials in it. Self-contained:
 * the bundle worker runs it from its source text.
 */
export function fetchFailureReason(err: unknown): string {
  const e = err as { name?: unknown; cause?: { code?: unknown; message?: unknown } } | null;
  const c = e?.cause;
  const reason =
    (typeof c?.code === 'string' && c.code) ||
    (typeof c?.message === 'string' && c.message) ||
    (e?.name === 'TimeoutError' ? 'timed out' : typeof e?.name === 'string' ? e.name : 'error');
  return reason.slice(0, 200);
}

/**
 * Request headers that ask for the bytes as stored. Node's fetch asks for gzip, br and deflate by default and
 * decodes them, so the size bound and the digest would be applied to what a server chose to encode.
 */
export const IDENTITY_ENCODING = { 'accept-encoding': 'identity' } as const;

/**
 * Why a response is refused for its Content-Encoding, or null: the body was encoded although the request asked
 * for identity (IDENTITY_ENCODING), and the bounds and digests are over the stored bytes. Self-contained: the
 * bundle worker runs it from its source text.
 */
export function unaskedEncoding(res: Response, what: string): string | null {
  const encoding = res.headers.get('content-encoding');
  if (encoding === null || encoding.trim().toLowerCase() === 'identity') return null;
  return `${what} came with Content-Encoding ${encoding.slice(0, 40)} to a request for identity`;
}

/** Reads a response body up to `maxBytes`; a larger one is refused without buffering it. */
export async function readBodyBounded(res: Response, maxBytes: number, what: string): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  const encoded = unaskedEncoding(res, what);
  const refused =
    (encoded !== null ? new VerdictError('ERR_BUNDLE_SOURCE', encoded) : null) ??
    (Number.isFinite(declared) && declared > maxBytes
      ? new VerdictError('ERR_BUNDLE_TOO_LARGE', `${what} is ${declared} bytes (max ${maxBytes})`)
      : null);
  if (refused) {
    await res.body?.cancel().catch(() => undefined);
    throw refused;
  }
  const chunks: Buffer[] = [];
  let total = 0;
  if (res.body === null) return Buffer.alloc(0);
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      total += chunk.byteLength;
      // Leaving the loop by throwing cancels the stream: the rest is never read.
      if (total > maxBytes) throw new VerdictError('ERR_BUNDLE_TOO_LARGE', `${what} exceeds ${maxBytes} bytes`);
      chunks.push(Buffer.from(chunk));
    }
  } catch (err) {
    if (err instanceof VerdictError) throw err;
    throw new VerdictError('ERR_BUNDLE_SOURCE', `${what} broke off: ${fetchFailureReason(err)}`);
  }
  return Buffer.concat(chunks);
}

/** How a remote source polls: shared by the HTTP bundle service and the OCI registry sources. */
export interface PollingOptions {
  /** Authorization header value; never logged. */
  authorization: string | null;
  minDelayMs: number;
  maxDelayMs: number;
  timeoutMs: number;
  maxBytes: number;
  random?: () => number;
}
