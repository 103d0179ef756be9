import { Worker } from 'node:worker_threads';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { VerdictError } from '../errors';
import { DEFAULT_LOAD_TIMEOUT_MS } from './bundle';
import { canonicalJSONText } from './bundle-json-hash';

export type FileHashAlgorithm = 'sha256' | 'sha384' | 'sha512';

export interface FileToHash {
  name: string;
  data: Buffer;
  algorithm: FileHashAlgorithm;
  /** data.json / .manifest: hashed in OPA's canonical JSON form. */
  structured: boolean;
}

/** Files at least this large are hashed off the event loop; smaller ones cost less than a worker hop. */
export const OFF_LOOP_BYTES = 256 * 1024;

// The worker runs the very same canonicalizer (its source is self-contained), so both paths hash alike.
const WORKER_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const canonicalJSONText = (${canonicalJSONText.toString()});
const out = [];
for (const f of workerData.files) {
  const bytes = Buffer.from(f.data.buffer, f.data.byteOffset, f.data.byteLength);
  try {
    const h = createHash(f.algorithm);
    if (f.structured) h.update(canonicalJSONText(bytes.toString('utf8')), 'utf8');
    else h.update(bytes);
    out.push({ hash: h.digest('hex') });
  } catch (err) {
    out.push({ error: String(err && err.message ? err.message : err) });
  }
}
parentPort.postMessage(out);
`;

/** Bytes copied per event-loop turn when handing a file to the worker (well under 1 ms a slice). */
const COPY_SLICE_BYTES = 1024 * 1024;

/**
 * Hashes large bundle files in a throw-away worker thread, so that a 50 MB data.json (whose canonical
 * form needs a full parse) never blocks a Check. Bounded like every load step: a deadline (the worker is
 * terminated, ERR_BUNDLE_LOAD_TIMEOUT) and a heap limit (a failed worker is ERR_BUNDLE_TOO_LARGE). The
 * bytes are copied into one transferable buffer per file, a slice per event-loop turn (copyInSlices).
 * The deadline covers the hashing only, not the copy: the copy is bounded by the file size.
 */
export async function hashFilesOffLoop(files: readonly FileToHash[], timeoutMs = DEFAULT_LOAD_TIMEOUT_MS): Promise<string[]> {
  const data: Uint8Array[] = [];
  for (const f of files) data.push(await copyInSlices(f.data));
  return hashInWorker(files, data, timeoutMs);
}

/**
 * A copy of `src` in an ArrayBuffer of its own (transferable: the bundle keeps its bytes), made one slice
 * per event-loop turn. One 50 MB memcpy — plus faulting in the fresh pages — is tens of ms on a busy core.
 */
async function copyInSlices(src: Buffer): Promise<Uint8Array> {
  // allocUnsafeSlow: never from the shared pool (so its ArrayBuffer is this copy alone), and not zero-filled.
  const copy = Buffer.allocUnsafeSlow(src.length);
  for (let off = 0; off < src.length; off += COPY_SLICE_BYTES) {
    src.copy(copy, off, off, Math.min(src.length, off + COPY_SLICE_BYTES));
    if (off + COPY_SLICE_BYTES < src.length) await yieldToEventLoop();
  }
  return new Uint8Array(copy.buffer, copy.byteOffset, copy.length);
}

function hashInWorker(files: readonly FileToHash[], data: Uint8Array[], timeoutMs: number): Promise<string[]> {
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { files: files.map((f, i) => ({ algorithm: f.algorithm, structured: f.structured, data: data[i] })) },
    transferList: data.map((d) => d.buffer as ArrayBuffer),
    // The canonical text of a structured file is about its size again, as a string (2 bytes a char).
    resourceLimits: { maxOldGenerationSizeMb: Math.max(256, Math.ceil((6 * data.reduce((n, d) => n + d.length, 0)) / 2 ** 20)) },
  });
  worker.unref();
  return new Promise<string[]>((resolve, reject) => {
    const timer = setTimeout(() => {
      void worker.terminate();
      reject(new VerdictError('ERR_BUNDLE_LOAD_TIMEOUT', `hashing bundle files ran past its ${timeoutMs} ms deadline`));
    }, timeoutMs);
    const settle = (fn: () => void): void => {
      clearTimeout(timer);
      void worker.terminate();
      fn();
    };
    worker.once('message', (out: ({ hash: string } | { error: string })[]) =>
      settle(() => {
        const failed = out.findIndex((o) => 'error' in o);
        if (failed === -1) return resolve(out.map((o) => (o as { hash: string }).hash));
        reject(new VerdictError('ERR_BUNDLE_INVALID', `${files[failed]?.name}: ${(out[failed] as { error: string }).error}`));
      }),
    );
    worker.once('error', (err) =>
      settle(() => reject(new VerdictError('ERR_BUNDLE_TOO_LARGE', `hashing bundle files failed: ${err.message}`))),
    );
    worker.once('exit', () => settle(() => reject(new VerdictError('ERR_BUNDLE_TOO_LARGE', 'hashing worker exited'))));
  });
}
