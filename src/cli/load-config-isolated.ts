import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { ConfigSources } from '../config/load-config';
import type { Config } from '../config/schema';
import { VerdictError, isErrorCode } from '../errors';

// The worker validates the config the usual way (`loadConfig`) and posts the plain, cloneable result.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
try {
  const { loadConfig } = require(workerData.loadConfigPath);
  parentPort.postMessage({ config: loadConfig({ file: workerData.file, env: process.env, overrides: workerData.overrides }) });
} catch (err) {
  parentPort.postMessage({ refusal: { code: err && err.name === 'VerdictError' ? err.code : null, message: String(err && err.message) } });
}
`;

type WorkerAnswer = { config: Config } | { refusal: { code: string | null; message: string } };

/** What the config worker may take; a config past either is refused (ERR_CONFIG) before serving starts. */
export interface ConfigWorkerBounds {
  /** V8 old-generation heap of the worker. YAML costs up to ~500 bytes of heap per byte parsed (docs/config.md). */
  heapMb: number;
  /** From the worker's creation to its answer. */
  timeoutMs: number;
}

export const CONFIG_WORKER_BOUNDS: Readonly<ConfigWorkerBounds> = Object.freeze({ heapMb: 512, timeoutMs: 30_000 });

/**
 * `loadConfig` in a throw-away worker thread, so that zod and the config schema (about 5 MiB of heap, a
 * third of what a serving process keeps) are loaded in the worker's heap, which is freed when it exits,
 * and never in the serving one (docs/memory.md). The worker reads the same environment (a copy of this
 * process's). Refusals keep their code (ERR_CONFIG); the result is deep-frozen as `loadConfig`'s is. The
 * worker is bounded in heap and time: a config that needs more is refused with ERR_CONFIG.
 */
export function loadConfigIsolated(
  sources: Omit<ConfigSources, 'env'>,
  bounds: Readonly<ConfigWorkerBounds> = CONFIG_WORKER_BOUNDS,
): Promise<Config> {
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: {
      loadConfigPath: join(__dirname, '..', 'config', 'load-config.js'),
      file: sources.file,
      overrides: sources.overrides ?? [],
    },
    resourceLimits: { maxOldGenerationSizeMb: bounds.heapMb },
  });
  return new Promise<Config>((resolve, reject) => {
    let answer: WorkerAnswer | null = null;
    let failure: VerdictError | null = null;
    const deadline = setTimeout(() => {
      if (answer !== null) return; // answered in time, exiting now
      failure = new VerdictError('ERR_CONFIG', `config validation did not finish within ${bounds.timeoutMs} ms`);
      void worker.terminate();
    }, bounds.timeoutMs);
    worker.once('message', (m: WorkerAnswer) => (answer = m));
    worker.once('error', (err: Error & { code?: unknown }) => {
      failure ??=
        err.code === 'ERR_WORKER_OUT_OF_MEMORY'
          ? new VerdictError('ERR_CONFIG', `config validation needed more than ${bounds.heapMb} MiB of heap`)
          : new VerdictError('ERR_INTERNAL', `config validation failed: ${err.message}`);
    });
    // Settled once the worker is gone, so its heap is freed before serving starts.
    worker.once('exit', (code) => {
      clearTimeout(deadline);
      if (failure !== null) return reject(failure);
      if (answer === null) return reject(new VerdictError('ERR_INTERNAL', `config validation: its worker exited (code ${code})`));
      if ('config' in answer) return resolve(deepFreeze(answer.config));
      const { code: refusal, message } = answer.refusal;
      reject(new VerdictError(refusal !== null && isErrorCode(refusal) ? refusal : 'ERR_INTERNAL', message));
    });
  });
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
