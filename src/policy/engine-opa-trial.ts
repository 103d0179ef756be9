import { createRequire } from 'node:module';
import { VerdictError } from '../errors';
import type { InputDocument } from '../request/input-document';
import { runLoadWorker } from './engine-load-worker';

/**
 * An OPA module's data is loaded in a throw-away worker, never on the event loop: instantiation runs the
 * module's start section (opa build emits one), `setData` runs `opa_json_parse` over the whole data.json in
 * one call (its time grows faster than the data: 32 ms for 1 MiB, 1.8 s for 4 MiB here), and the self-test
 * runs `opa_eval`; none of them can be interrupted on the main thread. A module that does not finish all
 * three within the deadline is refused (ERR_BUNDLE_LOAD_TIMEOUT) and its worker terminated.
 *
 * What comes back is the instance's memory image right after `setData` (before the self-test): its linear
 * memory up to the heap pointer, its size, and where the data lies. The event loop copies that image into
 * an instance of its own a slice per turn (engine-opa.ts); docs/bundles.md says why that is the whole state.
 */
const TRIAL_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const { loadPolicySync } = require(workerData.opaWasmPath);
function load() {
  try {
    const policy = loadPolicySync(workerData.module, { initial: workerData.initialPages, maximum: workerData.maxPages });
    if (workerData.data) policy.setData(workerData.data);
    return policy;
  } catch (err) {
    parentPort.postMessage({ failed: typeof err === 'string' ? err : String(err && err.message) });
    return null;
  }
}
const policy = load();
if (policy !== null) {
  const bytes = new Uint8Array(policy.mem.buffer.slice(0, policy.dataHeapPtr));
  const pages = policy.mem.buffer.byteLength / 65536;
  const image = { bytes, pages, dataAddr: policy.dataAddr, dataHeapPtr: policy.dataHeapPtr };
  let selfTest = null;
  const id = Object.hasOwn(policy.entrypoints, workerData.entrypoint) ? policy.entrypoints[workerData.entrypoint] : undefined;
  try {
    if (id !== undefined) selfTest = JSON.stringify(policy.evaluate(workerData.input, id));
  } catch {
    // The event loop's own self-test reports the failure with its code.
  }
  parentPort.postMessage({ image, selfTest }, [bytes.buffer]);
}
`;

const opaWasmPath = createRequire(__filename).resolve('@open-policy-agent/opa-wasm');

export interface OPATrial {
  module: WebAssembly.Module;
  data: Uint8Array | null;
  entrypoint: string;
  input: InputDocument;
  initialPages: number;
  maxPages: number;
  timeoutMs: number;
}

/** An instance's state after its data is loaded: memory [0, dataHeapPtr) and the memory's size in pages. */
export interface OPAMemoryImage {
  bytes: Uint8Array;
  pages: number;
  dataAddr: number;
  dataHeapPtr: number;
}

export interface OPATrialResult {
  image: OPAMemoryImage;
  /** The self-test's result set as JSON, or null when it failed (left to the store's self-test). */
  selfTest: string | null;
}

export function trialRunOPA(trial: OPATrial): Promise<OPATrialResult> {
  const { timeoutMs, data, ...rest } = trial;
  return runLoadWorker<OPATrialResult>({
    source: TRIAL_SOURCE,
    workerData: { ...rest, opaWasmPath },
    files: { data },
    resourceLimits: { maxOldGenerationSizeMb: 128, maxYoungGenerationSizeMb: 16 },
    timeoutMs,
    what: 'policy.wasm (instantiate, load its data, self-test)',
    onMessage: (m, finish) => {
      const out = m as { failed: string } | OPATrialResult;
      finish('failed' in out ? new VerdictError('ERR_BUNDLE_ENGINE', `policy.wasm fails to instantiate: ${out.failed}`) : { value: out });
    },
  });
}
