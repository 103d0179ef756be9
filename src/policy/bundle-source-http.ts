import { VerdictError } from '../errors';
import {
  abortableDelay,
  fetchFailureReason,
  IDENTITY_ENCODING,
  jitteredDelayMs,
  readBodyBounded,
  type BundleSource,
  type StagedArtifact,
  type PollingOptions,
} from './bundle-source';
import { StagedBundle, stagingFor, type StagingOptions } from './bundle-staged';

export interface HTTPSourceOptions extends PollingOptions {
  url: string;
  /** cosign signature URL, fetched with every new bundle; null when none is expected. */
  signatureUrl: string | null;
  /** The bundle worker the body is streamed into (bundle-staged.ts); default: sized for the default limits. */
  staging?: StagingOptions;
}

/**
 * An OPA bundle service (OPA docs, "Bundles": HTTP GET of the bundle resource). Polls with
 * If-None-Match so an unchanged bundle costs a 304; waits a jittered delay between min and max, and
 * backs off (doubling up to 8× max) while the service fails, so an outage is not hammered.
 */
export class HTTPBundleSource implements BundleSource {
  readonly description: string;
  private etag: string | null = null;
  private failures = 0;

  constructor(private readonly options: HTTPSourceOptions) {
    this.description = `http ${redactURL(options.url)}`;
  }

  async fetch(): Promise<StagedArtifact | null> {
    try {
      // The bundle worker makes the GET itself (bundle-staged.ts): the body never passes through the event loop.
      const got = await StagedBundle.fromURL(
        {
          url: this.options.url,
          headers: this.headers(this.etag),
          redirect: 'error',
          timeoutMs: this.options.timeoutMs,
          what: `bundle service ${redactURL(this.options.url)}`,
        },
        this.options.maxBytes,
        this.options.staging ?? stagingFor(),
      );
      if (got.status === 304) {
        // A 304 answers If-None-Match; to a request without one it says nothing about any bundle.
        if (this.etag === null)
          throw new VerdictError('ERR_BUNDLE_SOURCE', 'bundle service answered HTTP 304 to a request with no ETag to match');
        this.failures = 0;
        return null;
      }
      if (got.staged === null) throw new VerdictError('ERR_BUNDLE_SOURCE', `bundle service answered HTTP ${got.status}`);
      const bytes = got.staged;
      let cosignSignature: Buffer | undefined;
      try {
        cosignSignature = this.options.signatureUrl === null ? undefined : await this.signature(this.options.signatureUrl);
      } catch (err) {
        bytes.close();
        throw err;
      }
      // Remember the ETag only now: a failure above must re-download next time.
      this.etag = got.etag;
      this.failures = 0;
      return { bytes, origin: this.options.url, cosignSignature };
    } catch (err) {
      this.failures++;
      throw err;
    }
  }

  waitForChange(signal: AbortSignal, failed: boolean): Promise<void> {
    const base = jitteredDelayMs(this.options.minDelayMs, this.options.maxDelayMs, this.options.random);
    const factor = failed ? Math.min(8, 2 ** Math.max(0, this.failures - 1)) : 1;
    return abortableDelay(base * factor, signal);
  }

  close(): void {}

  /** 404: no signature published, i.e. an unsigned bundle (refused by the verifier as ERR_BUNDLE_SIGNATURE). */
  private async signature(url: string): Promise<Buffer | undefined> {
    const res = await this.get(url, null);
    if (res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new VerdictError('ERR_BUNDLE_SOURCE', `signature ${redactURL(url)} answered HTTP ${res.status}`);
    }
    return readBodyBounded(res, 1024 * 1024, 'signature');
  }

  private headers(etag: string | null): Record<string, string> {
    const headers: Record<string, string> = { accept: 'application/gzip, application/octet-stream', ...IDENTITY_ENCODING };
    if (etag !== null) headers['if-none-match'] = etag;
    if (this.options.authorization !== null) headers.authorization = this.options.authorization;
    return headers;
  }

  private async get(url: string, etag: string | null): Promise<Response> {
    try {
      return await fetch(url, { headers: this.headers(etag), redirect: 'error', signal: AbortSignal.timeout(this.options.timeoutMs) });
    } catch (err) {
      throw new VerdictError('ERR_BUNDLE_SOURCE', `bundle service ${redactURL(url)} unreachable (${fetchFailureReason(err)})`);
    }
  }
}

/** URLs may carry credentials or tokens in the query: logs get scheme, host and path only. */
export function redactURL(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid url)';
  }
}
