import { createRequire } from 'node:module';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { VerdictError, type ErrorCode } from '../errors';
import { canonicalJSONWrite } from './bundle-json-hash';
import { readRegularFile, regularFileSteps } from './bundle-file-read';
import { cosignVerifyBlob } from './bundle-cosign-blob';
import { fetchFailureReason, unaskedEncoding } from './bundle-source';
import { hashHeldFiles } from './bundle-signed-hashes';
import { untarStream } from './bundle-untar-stream';

/**
 * The heavy steps of reading a candidate bundle, each run in a bundle worker thread. `stage` puts the
 * bundle file into the worker (read there from a path, or from bytes handed over) and hashes it, `download`
 * likewise from a URL the worker GETs itself; `cosign`, `untar`, `more` (the untar's held files) and `archive` (the file
 * itself, back to the event loop) then work on those bytes; `hashHeld` hashes the untar's held files as a verified
 * signature lists them. `hash` hashes files handed over with it.
 */
export type BundleWorkerTask = 'stage' | 'download' | 'cosign' | 'untar' | 'hashHeld' | 'more' | 'archive' | 'hash';

const tarStreamPath = createRequire(__filename).resolve('tar-stream');

// The worker runs the very same functions as the rest of verdict (each is self-contained, so its source
// text is all it needs): the bounded file read (its steps and their fs/promises driver), the bundle reader's untar, OPA's canonical JSON and
// the cosign check. Each message gets one answer: { value } (its buffers transferred back,
// not copied; `more` when the worker holds the rest) or a { refusal } with a code.
const WORKER_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const crypto = require('node:crypto');
const regularFileSteps = (${regularFileSteps.toString()});
const readRegularFile = (${readRegularFile.toString()});
const canonicalJSONWrite = (${canonicalJSONWrite.toString()});
const { isUtf8 } = require('node:buffer');
/** OPA's canonical JSON of data into hash h, streamed (bundle-json-hash.ts). */
const hashStructured = (data, h) => canonicalJSONWrite(data, (chunk) => h.update(chunk), isUtf8);
const untarStream = (${untarStream.toString()});
const cosignVerifyBlob = (${cosignVerifyBlob.toString()});
const fetchFailureReason = (${fetchFailureReason.toString()});
const unaskedEncoding = (${unaskedEncoding.toString()});
const hashHeldFiles = (${hashHeldFiles.toString()});
// A lower CPU priority for this thread alone (Linux nice values are per thread; /proc/thread-self names its
// id), so that a worker at full speed yields the core to the event loop whenever the loop has work. Nice 10,
// not 19: the task still has its deadline, and on a saturated machine nice 19 would starve it past it.
try {
  require('node:os').setPriority(Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop()), 10);
} catch {}
const asBuffer = (u8) => Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
/** u8 in an ArrayBuffer of its own, so that transferring it moves nothing else. */
const owned = (u8) => (u8.byteOffset === 0 && u8.byteLength === u8.buffer.byteLength ? u8 : new Uint8Array(u8));
let archive = null;
let held = null;
const refusal = (code, message) => ({ code, message });
/** The staged file's size and sha256, compared with what it must be when that is known (an OCI descriptor). */
const hashed = (w) => {
  const sha256 = crypto.createHash('sha256').update(archive).digest('hex');
  const e = w.expected;
  if (e !== undefined && (sha256 !== e.sha256 || archive.length !== e.size))
    throw refusal('ERR_BUNDLE_HASH_MISMATCH', w.what + ' is sha256:' + sha256 + ' (' + archive.length + ' bytes), not sha256:' + e.sha256 + ' (' + e.size + ' bytes)');
  return { size: archive.length, sha256 };
};
const tasks = {
  async stage(w) {
    if (w.path !== undefined) archive = await readRegularFile(require('node:fs/promises'), w.flags, w.path, w.maxBytes, w.what, refusal);
    else archive = w.gz;
    return { value: hashed(w), transfer: [] };
  },
  // A GET made here, so the body never passes through the event loop; its status and ETag go back, and with
  // 200 the body is staged. Over maxBytes (declared, or while it streams): the rest is not read.
  async download(w) {
    let res;
    try {
      res = await fetch(w.url, { headers: w.headers, redirect: w.redirect, signal: AbortSignal.timeout(w.fetchTimeoutMs) });
    } catch (err) {
      throw refusal('ERR_BUNDLE_SOURCE', w.what + ' unreachable (' + fetchFailureReason(err) + ')');
    }
    const head = { status: res.status, etag: res.headers.get('etag') };
    const encoded = res.status === 200 ? unaskedEncoding(res, w.what) : null;
    if (encoded !== null) {
      await (res.body && res.body.cancel().catch(() => undefined));
      throw refusal('ERR_BUNDLE_SOURCE', encoded);
    }
    const tooLarge = () => refusal('ERR_BUNDLE_TOO_LARGE', w.what + ' exceeds ' + w.maxBytes + ' bytes');
    const declared = Number(res.headers.get('content-length') ?? NaN);
    if (res.status !== 200 || (Number.isFinite(declared) && declared > w.maxBytes)) {
      await (res.body && res.body.cancel().catch(() => undefined));
      if (res.status !== 200) return { value: head, transfer: [] };
      throw tooLarge();
    }
    const parts = [];
    let total = 0;
    try {
      // Leaving the loop by throwing cancels the stream.
      for await (const chunk of res.body || []) {
        total += chunk.byteLength;
        if (total > w.maxBytes) throw tooLarge();
        parts.push(chunk);
      }
    } catch (err) {
      if (err && err.code === 'ERR_BUNDLE_TOO_LARGE') throw err;
      throw refusal('ERR_BUNDLE_SOURCE', w.what + ' broke off: ' + fetchFailureReason(err));
    }
    archive = Buffer.concat(parts, total);
    return { value: Object.assign(head, hashed(w)), transfer: [] };
  },
  async cosign(w) {
    return { value: cosignVerifyBlob(crypto, asBuffer(archive), w.publicKey, w.signature, w.digest), transfer: [] };
  },
  async untar(w) {
    const lib = { createGunzip: require('node:zlib').createGunzip, extract: require(w.tarStreamPath).extract };
    const files = await untarStream(archive, w.bounds, lib);
    const large = w.holdFrom > 0 ? files.filter(([, d]) => d.length >= w.holdFrom) : [];
    const small = files.filter((f) => !large.includes(f));
    // Large files stay here until the signature over them has verified: a refused bundle's 50 MB never
    // reaches the event loop's heap accounting (whose collections are what would block it).
    held = large;
    const value = { files: small, held: large.map(([name, d]) => [name, d.length]) };
    return { value, more: large.length > 0, transfer: small.map(([, d]) => d.buffer) };
  },
  // Asked for once the JWT has verified, with the algorithms its listing names.
  async hashHeld(w) {
    const value = hashHeldFiles(held || [], w.files, crypto, hashStructured);
    return { value, more: held !== null && held.length > 0, transfer: [] };
  },
  async more() {
    const value = held || [];
    held = null;
    return { value, transfer: value.map(([, d]) => d.buffer) };
  },
  async archive() {
    const value = owned(archive);
    archive = null;
    return { value, transfer: [value.buffer] };
  },
  async hash(w) {
    const value = w.files.map((f) => {
      const h = crypto.createHash(f.algorithm);
      try {
        if (f.structured) hashStructured(f.data, h);
        else h.update(f.data);
      } catch (err) {
        throw refusal('ERR_BUNDLE_INVALID', f.name + ': ' + (err && err.message ? err.message : String(err)));
      }
      return h.digest('hex');
    });
    return { value, transfer: [] };
  },
};
parentPort.on('message', (w) => {
  tasks[w.task](Object.assign({ tarStreamPath: workerData.tarStreamPath }, w)).then(
    ({ value, more, transfer }) => parentPort.postMessage({ value, more: more === true }, transfer),
    (err) => parentPort.postMessage({ refusal: { code: err && err.code, message: String(err && err.message ? err.message : err) } }),
  );
});
`;

export interface BundleWorkerRun {
  /** Fields of the task (bytes as Uint8Arrays over ArrayBuffers listed in `transfer`). */
  payload: Record<string, unknown>;
  transfer: ArrayBuffer[];
  timeoutMs: number;
  /** Codes a refusal from this task may carry; anything else becomes ERR_BUNDLE_INVALID. */
  codes: readonly ErrorCode[];
  what: string;
}

/**
 * One bundle worker thread, bounded like every load step: each task has a deadline (the worker is
 * terminated, ERR_BUNDLE_LOAD_TIMEOUT) and the worker has a heap limit (past it the worker fails:
 * ERR_BUNDLE_TOO_LARGE; bytes in buffers are outside it). The event loop only posts tasks and receives
 * finished results; the work, its allocations and their garbage collection are the worker's. Whoever
 * makes one closes it; a worker holding the rest of a result (`more`) that is not asked for within the
 * task's deadline is ended, so held files are never left behind. A task sent to a closed worker fails.
 */
export class BundleWorker {
  private readonly worker: Worker;
  private idle: NodeJS.Timeout | undefined;
  private busy = false;
  private closed = false;

  constructor(heapMb: number) {
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { tarStreamPath },
      resourceLimits: { maxOldGenerationSizeMb: heapMb },
    });
    this.worker.unref();
    // An error with no task waiting (the worker ended while idle) has nobody to tell.
    this.worker.on('error', () => undefined);
  }

  /** Runs one task; `more` says the worker holds the rest of its result (the untar's large files). */
  run<T>(task: BundleWorkerTask, run: BundleWorkerRun): Promise<{ value: T; more: boolean }> {
    if (this.busy || this.closed)
      return Promise.reject(new VerdictError('ERR_INTERNAL', `${run.what}: the bundle worker is busy or closed`));
    this.busy = true;
    clearTimeout(this.idle);
    const worker = this.worker;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        settle(false, () => reject(new VerdictError('ERR_BUNDLE_LOAD_TIMEOUT', `${run.what} ran past its ${run.timeoutMs} ms deadline`)));
        this.close();
      }, run.timeoutMs);
      const onMessage = (out: { value: T; more: boolean } | { refusal: { code: unknown; message: string } }): void =>
        settle('value' in out && out.more, () => {
          if ('value' in out) return resolve(out);
          const code = run.codes.find((c) => c === out.refusal.code) ?? 'ERR_BUNDLE_INVALID';
          reject(new VerdictError(code, out.refusal.message));
        });
      const onError = (err: Error): void =>
        settle(false, () => reject(new VerdictError('ERR_BUNDLE_TOO_LARGE', `${run.what} failed: ${err.message}`)));
      const onExit = (): void => settle(false, () => reject(new VerdictError('ERR_BUNDLE_TOO_LARGE', `${run.what}: its worker exited`)));
      const settle = (holding: boolean, fn: () => void): void => {
        clearTimeout(timer);
        worker.off('message', onMessage).off('error', onError).off('exit', onExit);
        this.busy = false;
        if (holding) this.idle = setTimeout(() => this.close(), run.timeoutMs);
        fn();
      };
      worker.once('message', onMessage).once('error', onError).once('exit', onExit);
      worker.postMessage({ task, ...run.payload }, run.transfer);
    });
  }

  /** Ends the worker and drops what it holds; idempotent. */
  close(): void {
    this.closed = true;
    clearTimeout(this.idle);
    void this.worker.terminate();
  }
}

/** One task in a throw-away worker (`heapMb`: its heap bound). */
export async function runInBundleWorker<T>(task: BundleWorkerTask, run: BundleWorkerRun & { heapMb: number }): Promise<T> {
  const worker = new BundleWorker(run.heapMb);
  try {
    return (await worker.run<T>(task, run)).value;
  } finally {
    worker.close();
  }
}

/** Bytes at least this large are read off the event loop; smaller ones cost less than a worker hop. */
export const OFF_LOOP_BYTES = 256 * 1024;

/** Bytes copied per event-loop turn when handing bytes to the worker (well under 1 ms a slice). */
const COPY_SLICE_BYTES = 1024 * 1024;

/**
 * A copy of `src` in an ArrayBuffer of its own (transferable: the caller keeps its bytes), made one slice
 * per event-loop turn. One 50 MB memcpy — plus faulting in the fresh pages — is tens of ms on a busy core.
 */
export async function copyInSlices(src: Uint8Array): Promise<Uint8Array> {
  // allocUnsafeSlow: never from the shared pool (so its ArrayBuffer is this copy alone), and not zero-filled.
  const copy = Buffer.allocUnsafeSlow(src.length);
  for (let off = 0; off < src.length; off += COPY_SLICE_BYTES) {
    copy.set(src.subarray(off, Math.min(src.length, off + COPY_SLICE_BYTES)), off);
    if (off + COPY_SLICE_BYTES < src.length) await yieldToEventLoop();
  }
  return new Uint8Array(copy.buffer, copy.byteOffset, copy.length);
}
