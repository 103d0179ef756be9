import { DEFAULT_BUNDLE_LIMITS, DEFAULT_LOAD_TIMEOUT_MS, type BundleLimits } from './bundle';
import { REGULAR_FILE_FLAGS } from './bundle-file-read';
import { BundleWorker, copyInSlices } from './bundle-worker';

/** How a bundle worker is sized and bounded: its heap limit and the deadline of each of its tasks. */
export interface StagingOptions {
  heapMb: number;
  timeoutMs: number;
}

/**
 * The heap a worker needs to untar within `limits`: file bytes and the canonical JSON a signed data.json is
 * hashed in live in buffers, outside the heap; what is left on it is one string's decoded and re-encoded
 * text when that string has escapes (bundle-json-hash.ts), at most the file's size again (2 bytes a char).
 */
export function stagingFor(limits: BundleLimits = DEFAULT_BUNDLE_LIMITS, timeoutMs = DEFAULT_LOAD_TIMEOUT_MS): StagingOptions {
  const maxUncompressedBytes = limits.maxUncompressedBytes;
  return { heapMb: Math.max(256, Math.ceil((6 * maxUncompressedBytes) / 2 ** 20)), timeoutMs };
}

const STAGE_CODES = ['ERR_BUNDLE_SOURCE', 'ERR_BUNDLE_FILE_TYPE', 'ERR_BUNDLE_TOO_LARGE', 'ERR_BUNDLE_HASH_MISMATCH'] as const;

/** What a download must turn out to be (an OCI layer's descriptor): checked by the worker once it has all of it. */
export interface ExpectedContent {
  sha256: string;
  size: number;
}

/** A GET a bundle worker makes for a source. */
export interface DownloadRequest {
  url: string;
  /** Sent as given (an Authorization header among them); never logged. */
  headers: Record<string, string>;
  redirect: 'error' | 'follow';
  /** The whole download's deadline (the source's timeoutMs). */
  timeoutMs: number;
  /** For messages: no secrets (a redacted URL, a digest). */
  what: string;
}

/**
 * A bundle file whose bytes live in a bundle worker, not on the event loop: read there from its path,
 * downloaded there from a URL, or copied there. Its size and sha256 are known; cosign and the untar run
 * on it in the same worker (bundle-signature-cosign.ts, bundle-untar.ts). Only an accepted bundle's file
 * comes back to the event loop (`bytes()`, to persist it); a refused one is dropped with its worker. Whoever
 * stages it closes it; a worker left idle past its deadline ends by itself.
 */
export class StagedBundle {
  private archive: Buffer | null = null;

  private constructor(
    readonly worker: BundleWorker,
    readonly sha256: string,
    readonly size: number,
    private readonly options: StagingOptions,
  ) {}

  /** The regular file at `path`, at most `maxBytes` (bundle-file-read.ts), read by the worker. */
  static fromFile(path: string, maxBytes: number, what: string, options: StagingOptions): Promise<StagedBundle> {
    return StagedBundle.stage(new BundleWorker(options.heapMb), { path, maxBytes, what, flags: REGULAR_FILE_FLAGS }, [], options);
  }

  /**
   * GETs `request.url` from a bundle worker (its own `fetch`): the body never passes through the event loop,
   * not even chunk by chunk. The status and ETag come back; with 200 the body is staged (bounded by
   * `maxBytes`, declared or while it streams: ERR_BUNDLE_TOO_LARGE, the rest unread), and with `expected` its
   * sha256 and size are compared with it there (ERR_BUNDLE_HASH_MISMATCH). Unreachable, or a body that
   * breaks off: ERR_BUNDLE_SOURCE.
   */
  static async fromURL(
    request: DownloadRequest,
    maxBytes: number,
    options: StagingOptions,
    expected?: ExpectedContent,
  ): Promise<{ status: number; etag: string | null; staged: StagedBundle | null }> {
    const worker = new BundleWorker(options.heapMb);
    try {
      const { value } = await worker.run<{ status: number; etag: string | null; sha256?: string; size?: number }>('download', {
        payload: {
          url: request.url,
          headers: request.headers,
          redirect: request.redirect,
          fetchTimeoutMs: request.timeoutMs,
          maxBytes,
          what: request.what,
          expected,
        },
        transfer: [],
        // The download has the source's deadline; hashing what arrived has the load step's.
        timeoutMs: request.timeoutMs + options.timeoutMs,
        codes: STAGE_CODES,
        what: request.what,
      });
      if (value.status !== 200 || value.sha256 === undefined || value.size === undefined) {
        worker.close();
        return { status: value.status, etag: value.etag, staged: null };
      }
      return { status: value.status, etag: value.etag, staged: new StagedBundle(worker, value.sha256, value.size, options) };
    } catch (err) {
      worker.close();
      throw err;
    }
  }

  /** Bytes already on the event loop: a copy made a slice per turn goes to the worker (the caller keeps its bytes). */
  static async fromBytes(bytes: Buffer, options: StagingOptions): Promise<StagedBundle> {
    const gz = await copyInSlices(bytes);
    return StagedBundle.stage(
      new BundleWorker(options.heapMb),
      { gz, maxBytes: gz.length, what: 'bundle' },
      [gz.buffer as ArrayBuffer],
      options,
    );
  }

  /**
   * Runs `fn` on a bundle file held by a bundle worker: a StagedBundle as it is (its owner closes it), bytes
   * copied into a worker of their own for the call, closed after it.
   */
  static async use<T>(file: Buffer | StagedBundle, options: StagingOptions, fn: (staged: StagedBundle) => Promise<T>): Promise<T> {
    if (file instanceof StagedBundle) return fn(file);
    const staged = await StagedBundle.fromBytes(file, options);
    try {
      return await fn(staged);
    } finally {
      staged.close();
    }
  }

  private static async stage(
    worker: BundleWorker,
    payload: Record<string, unknown>,
    transfer: ArrayBuffer[],
    options: StagingOptions,
  ): Promise<StagedBundle> {
    try {
      const { value } = await worker.run<{ sha256: string; size: number }>('stage', {
        payload,
        transfer,
        timeoutMs: options.timeoutMs,
        codes: STAGE_CODES,
        what: `reading ${String(payload.what)}`,
      });
      return new StagedBundle(worker, value.sha256, value.size, options);
    } catch (err) {
      worker.close();
      throw err;
    }
  }

  /** The bundle file on the event loop (transferred once, then kept here); the worker has no bytes left. */
  async bytes(): Promise<Buffer> {
    if (this.archive !== null) return this.archive;
    const { value } = await this.worker.run<Uint8Array>('archive', {
      payload: {},
      transfer: [],
      timeoutMs: this.options.timeoutMs,
      codes: [],
      what: 'taking the bundle file',
    });
    this.archive = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    return this.archive;
  }

  close(): void {
    this.worker.close();
  }
}
