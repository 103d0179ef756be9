import { Worker, type ResourceLimits } from 'node:worker_threads';
import { VerdictError } from '../errors';
import { copyInSlices } from './bundle-worker';

export interface LoadWorkerSpec<T> {
  /** The worker's source text (run with `eval`, so it works the same from src/ under vitest and from dist/). */
  source: string;
  workerData: Record<string, unknown>;
  /**
   * Files for the worker, each put into workerData under its key as an ArrayBuffer of its own: copied a slice
   * per turn and transferred (cloning them into workerData would be one synchronous copy on the event loop).
   */
  files: Record<string, Uint8Array | null>;
  resourceLimits: ResourceLimits;
  timeoutMs: number;
  /** What the worker does, for messages (e.g. "the Cedar bundle's check"). */
  what: string;
  /** Each message the worker posts; `finish` ends the run with its result or a refusal. */
  onMessage(message: unknown, finish: (outcome: { value: T } | VerdictError) => void): void;
}

/**
 * A throw-away worker that loads or checks a candidate engine off the event loop, with the load step's
 * deadline: past it ERR_BUNDLE_LOAD_TIMEOUT and the worker is terminated; a worker that fails or exits
 * before it answers is ERR_BUNDLE_ENGINE. The worker is terminated once the run is over, whatever its end.
 */
export async function runLoadWorker<T>(spec: LoadWorkerSpec<T>): Promise<T> {
  const workerData: Record<string, unknown> = { ...spec.workerData };
  const transferList: ArrayBuffer[] = [];
  for (const [key, bytes] of Object.entries(spec.files)) {
    // copyInSlices gives each copy an ArrayBuffer of exactly its length.
    const copy = bytes === null ? null : ((await copyInSlices(bytes)).buffer as ArrayBuffer);
    if (copy !== null) transferList.push(copy);
    workerData[key] = copy;
  }
  const worker = new Worker(spec.source, { eval: true, workerData, transferList, resourceLimits: spec.resourceLimits });
  worker.unref();
  return new Promise<T>((resolve, reject) => {
    let over = false;
    const finish = (outcome: { value: T } | VerdictError): void => {
      if (over) return;
      over = true;
      clearTimeout(timer);
      void worker.terminate();
      if (outcome instanceof VerdictError) reject(outcome);
      else resolve(outcome.value);
    };
    const timer = setTimeout(
      () => finish(new VerdictError('ERR_BUNDLE_LOAD_TIMEOUT', `${spec.what} did not finish within ${spec.timeoutMs} ms`)),
      spec.timeoutMs,
    );
    worker.on('message', (m: unknown) => spec.onMessage(m, finish));
    worker.once('error', (err) => finish(new VerdictError('ERR_BUNDLE_ENGINE', `${spec.what} failed: ${err.message}`)));
    worker.once('exit', (code) => finish(new VerdictError('ERR_BUNDLE_ENGINE', `${spec.what}: its worker exited (code ${code})`)));
  });
}
