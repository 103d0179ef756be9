import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { VerdictError } from '../errors';
import type { InputDocument } from '../request/input-document';
import { copyInSlices } from './bundle-worker';

/**
 * A trial run of an OPA module in a throw-away worker before it is instantiated on the event loop:
 * instantiation runs the module's start section (opa build emits one) and the self-test runs `opa_eval`,
 * neither of which can be interrupted on the main thread. A module that does not finish both within the
 * deadline is refused (ERR_BUNDLE_LOAD_TIMEOUT) and its worker terminated, so it never reaches the loop.
 * Failures other than a hang are left to the real instantiation and self-test, which report them with
 * their own codes.
 */
const TRIAL_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const { loadPolicySync } = require(workerData.opaWasmPath);
let outcome = 'ok';
try {
  const policy = loadPolicySync(workerData.module, { initial: workerData.initialPages, maximum: workerData.maxPages });
  if (workerData.data) policy.setData(workerData.data);
  const id = policy.entrypoints[workerData.entrypoint];
  if (id !== undefined) policy.evaluate(workerData.input, id);
} catch (err) {
  outcome = 'failed';
}
parentPort.postMessage(outcome);
`;

const opaWasmPath = createRequire(__filename).resolve('@open-policy-agent/opa-wasm');

export interface OPATrial {
  module: WebAssembly.Module;
  data: ArrayBuffer | null;
  entrypoint: string;
  input: InputDocument;
  initialPages: number;
  maxPages: number;
  timeoutMs: number;
}

export async function trialRunOPA(trial: OPATrial): Promise<void> {
  const { timeoutMs, data, ...rest } = trial;
  // The data goes over as a transferred copy made a slice per turn: cloning it into workerData would be one
  // synchronous copy of the whole data.json on the event loop.
  const copy = data === null ? null : (await copyInSlices(new Uint8Array(data))).buffer;
  const worker = new Worker(TRIAL_SOURCE, {
    eval: true,
    workerData: { ...rest, data: copy, opaWasmPath },
    transferList: copy === null ? [] : [copy as ArrayBuffer],
    resourceLimits: { maxOldGenerationSizeMb: 128, maxYoungGenerationSizeMb: 16 },
  });
  worker.unref();
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      void worker.terminate();
      reject(new VerdictError('ERR_BUNDLE_LOAD_TIMEOUT', `policy.wasm did not instantiate and self-test within ${timeoutMs} ms`));
    }, timeoutMs);
    const finish = (): void => {
      clearTimeout(timer);
      void worker.terminate();
      resolve();
    };
    worker.once('message', finish);
    worker.once('error', finish);
    worker.once('exit', finish);
  });
}
