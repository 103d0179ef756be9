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
    const large = w.hashSignedFrom > 0 ? files.filter(([, d]) => d.length >= w.hashSignedFrom) : [];
    if (large.length === 0) return { value: { files, hashes, held: [] }, transfer: files.map(([, d]) => d.buffer) };
    // Large files stay here until the signature over them has verified: a refused bundle's 50 MB never
    // reaches the event loop's heap accounting (whose collections are what would block it).
    const small = files.filter(([, d]) => d.length < w.hashSignedFrom);
    const held = large.map(([name, d]) => [name, d.length]);
    parentPort.postMessage({ value: { files: small, hashes, held }, more: true }, small.map(([, d]) => d.buffer));
    await new Promise((resolve) => parentPort.once('message', resolve));
    return { value: large, transfer: large.map(([, d]) => d.buffer) };
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
export async function runInBundleWorker<T>(task: BundleWorkerTask, run: BundleWorkerRun): Promise<T> {
  return (await runStagedInBundleWorker<T, never>(task, run)).value;
}

/** A task's first answer; `more()` asks a worker that holds more (the untar's large files) for the rest. */
export interface StagedResult<T, U> {
  value: T;
  /** Resolves with the held rest (same deadline as the first stage), or rejects when nothing is held. */
  more(): Promise<U>;
  /** Ends the worker without taking the rest. */
  stop(): void;
}

/** runInBundleWorker for a task that may hold part of its result back until asked. */
export function runStagedInBundleWorker<T, U>(task: BundleWorkerTask, run: BundleWorkerRun): Promise<StagedResult<T, U>> {
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { task, tarStreamPath, ...run.payload },
    transferList: run.transfer,
    resourceLimits: { maxOldGenerationSizeMb: run.heapMb },
  });
  worker.unref();
  const stop = (): void => void worker.terminate();
  const answer = <V>(): Promise<{ value: V; more: boolean }> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        stop();
        reject(new VerdictError('ERR_BUNDLE_LOAD_TIMEOUT', `${run.what} ran past its ${run.timeoutMs} ms deadline`));
      }, run.timeoutMs);
      const onMessage = (out: { value: V; more?: boolean } | { refusal: { code: unknown; message: string } }): void =>
        settle(
          () => {
            if ('value' in out) return resolve({ value: out.value, more: out.more === true });
            const code = run.codes.find((c) => c === out.refusal.code) ?? 'ERR_BUNDLE_INVALID';
            reject(new VerdictError(code, out.refusal.message));
          },
          'value' in out && out.more === true,
        );
      const onError = (err: Error): void =>
        settle(() => reject(new VerdictError('ERR_BUNDLE_TOO_LARGE', `${run.what} failed: ${err.message}`)));
      const onExit = (): void => settle(() => reject(new VerdictError('ERR_BUNDLE_TOO_LARGE', `${run.what}: its worker exited`)));
      function settle(fn: () => void, keep = false): void {
        clearTimeout(timer);
        worker.off('message', onMessage).off('error', onError).off('exit', onExit);
        if (!keep) stop();
        fn();
      }
      worker.once('message', onMessage).once('error', onError).once('exit', onExit);
    });
  return answer<T>().then(({ value, more }) => {
    // A worker holding bytes is never left behind: unclaimed within the deadline, it is ended.
    const unclaimed = more ? setTimeout(stop, run.timeoutMs) : undefined;
    return {
      value,
      more: async () => {
        clearTimeout(unclaimed);
        if (!more) throw new VerdictError('ERR_INTERNAL', `${run.what}: nothing was held back`);
        const rest = answer<U>();
        worker.postMessage('more');
        return (await rest).value;
      },
      stop: () => {
        clearTimeout(unclaimed);
        stop();
      },
    };
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
