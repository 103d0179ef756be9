import { createRequire } from 'node:module';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { VerdictError, type ErrorCode } from '../errors';
import { canonicalJSONText } from './bundle-json-hash';
import { cosignVerifyBlob } from './bundle-cosign-blob';
import { precomputeSignedHashes } from './bundle-signed-hashes';
import { untarStream } from './bundle-untar-stream';

/** The heavy steps of reading a candidate bundle, each run in a throw-away worker thread. */
export type BundleWorkerTask = 'untar' | 'hash' | 'cosign';

const tarStreamPath = createRequire(__filename).resolve('tar-stream');

// The worker runs the very same functions as the rest of verdict (each is self-contained, so its source
// text is all it needs): the bundle reader's untar, OPA's canonical JSON hash and the cosign check. A task
// resolves with { value } (its buffers transferred back, not copied) or a { refusal } with a code.
const WORKER_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const crypto = require('node:crypto');
const canonicalJSONText = (${canonicalJSONText.toString()});
const untarStream = (${untarStream.toString()});
const cosignVerifyBlob = (${cosignVerifyBlob.toString()});
const precomputeSignedHashes = (${precomputeSignedHashes.toString()});
// A lower CPU priority for this thread alone (Linux nice values are per thread; /proc/thread-self names its
// id), so that a worker at full speed yields the core to the event loop whenever the loop has work. Nice 10,
// not 19: the task still has its deadline, and on a saturated machine nice 19 would starve it past it.
try {
  require('node:os').setPriority(Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop()), 10);
} catch {}
const asBuffer = (u8) => Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
const tasks = {
  async untar(w) {
    const lib = { createGunzip: require('node:zlib').createGunzip, extract: require(w.tarStreamPath).extract };
    const files = await untarStream(w.gz, w.bounds, lib);
    const hashes = w.hashSignedFrom > 0 ? precomputeSignedHashes(files, w.hashSignedFrom, crypto, canonicalJSONText) : [];
    return { value: { files, hashes }, transfer: files.map(([, d]) => d.buffer) };
  },
  async hash(w) {
    const value = w.files.map((f) => {
      const h = crypto.createHash(f.algorithm);
      try {
        if (f.structured) h.update(canonicalJSONText(asBuffer(f.data).toString('utf8')), 'utf8');
        else h.update(f.data);
      } catch (err) {
        throw { code: 'ERR_BUNDLE_INVALID', message: f.name + ': ' + (err && err.message ? err.message : String(err)) };
      }
      return h.digest('hex');
    });
    return { value, transfer: [] };
  },
  async cosign(w) {
    return { value: cosignVerifyBlob(crypto, asBuffer(w.blob), w.publicKeyPEM, w.signature, w.digest), transfer: [] };
  },
};
tasks[workerData.task](workerData).then(
  ({ value, transfer }) => parentPort.postMessage({ value }, transfer),
  (err) => parentPort.postMessage({ refusal: { code: err && err.code, message: String(err && err.message ? err.message : err) } }),
);
`;

export interface BundleWorkerRun {
  /** Fields of the task (bytes as Uint8Arrays over ArrayBuffers listed in `transfer`). */
  payload: Record<string, unknown>;
  transfer: ArrayBuffer[];
  timeoutMs: number;
  /** The worker's V8 heap bound; bytes in buffers are outside it. Past it the worker fails: ERR_BUNDLE_TOO_LARGE. */
  heapMb: number;
  /** Codes a refusal from this task may carry; anything else becomes ERR_BUNDLE_INVALID. */
  codes: readonly ErrorCode[];
  what: string;
}

/**
 * Runs one task in a throw-away worker, bounded like every load step: a deadline (the worker is terminated,
 * ERR_BUNDLE_LOAD_TIMEOUT) and a heap limit. The event loop only posts the task and receives the finished
 * result; the work, its allocations and their garbage collection are the worker's.
 */
export function runInBundleWorker<T>(task: BundleWorkerTask, run: BundleWorkerRun): Promise<T> {
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { task, tarStreamPath, ...run.payload },
    transferList: run.transfer,
    resourceLimits: { maxOldGenerationSizeMb: run.heapMb },
  });
  worker.unref();
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      void worker.terminate();
      reject(new VerdictError('ERR_BUNDLE_LOAD_TIMEOUT', `${run.what} ran past its ${run.timeoutMs} ms deadline`));
    }, run.timeoutMs);
    const settle = (fn: () => void): void => {
      clearTimeout(timer);
      void worker.terminate();
      fn();
    };
    worker.once('message', (out: { value: T } | { refusal: { code: unknown; message: string } }) =>
      settle(() => {
        if ('value' in out) return resolve(out.value);
        const code = run.codes.find((c) => c === out.refusal.code) ?? 'ERR_BUNDLE_INVALID';
        reject(new VerdictError(code, out.refusal.message));
      }),
    );
    worker.once('error', (err) => settle(() => reject(new VerdictError('ERR_BUNDLE_TOO_LARGE', `${run.what} failed: ${err.message}`))));
    worker.once('exit', () => settle(() => reject(new VerdictError('ERR_BUNDLE_TOO_LARGE', `${run.what}: its worker exited`))));
  });
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
