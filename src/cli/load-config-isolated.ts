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

/**
 * `loadConfig` in a throw-away worker thread, so that zod and the config schema (about 5 MiB of heap, a
 * third of what a serving process keeps) are loaded in the worker's heap, which is freed when it exits,
 * and never in the serving one (docs/memory.md). The worker reads the same environment (a copy of this
 * process's). Refusals keep their code (ERR_CONFIG); the result is deep-frozen as `loadConfig`'s is.
 */
export function loadConfigIsolated(sources: Omit<ConfigSources, 'env'>): Promise<Config> {
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: {
      loadConfigPath: join(__dirname, '..', 'config', 'load-config.js'),
      file: sources.file,
      overrides: sources.overrides ?? [],
    },
  });
  return new Promise<Config>((resolve, reject) => {
    let answer: WorkerAnswer | null = null;
    worker.once('message', (m: WorkerAnswer) => (answer = m));
    worker.once('error', (err) => reject(new VerdictError('ERR_INTERNAL', `config validation failed: ${err.message}`)));
    // Settled once the worker is gone, so its heap is freed before serving starts.
    worker.once('exit', (code) => {
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
