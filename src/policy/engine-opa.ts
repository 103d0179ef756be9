import { createRequire } from 'node:module';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { LoadedPolicy } from '@open-policy-agent/opa-wasm';
import { clip, VerdictError } from '../errors';
import type { InputDocument } from '../request/input-document';
import { DEFAULT_LOAD_TIMEOUT_MS, type PolicyBundle } from './bundle';
import { verdictMetadata } from './bundle-reader';
import { serializeInput } from './engine-input';
import { type OPAMemoryImage, trialRunOPA } from './engine-opa-trial';
import { stoppedAtDeadline } from './eval-deadline';
import { evaluateText } from './opa-eval-text';
import { opaValueToResult } from './opa-result';
import { SELF_TEST_INPUT } from './engine-self-test-input';
import type { EngineFactory, EngineOptions, PolicyEngine } from './policy-engine';
import { shareResult, type PolicyResult } from './policy-result';
import { mutableGlobalCount } from './wasm-globals';

// The package's ESM entry omits loadPolicySync; its CommonJS entry has it.
const { loadPolicySync } = createRequire(__filename)('@open-policy-agent/opa-wasm') as typeof import('@open-policy-agent/opa-wasm');

const WASM_PAGE_BYTES = 64 * 1024;
const INITIAL_PAGES = 5;
/** How much of a memory image is copied per event-loop turn (about 0.1–0.5 ms here). */
const IMAGE_SLICE_BYTES = 1024 * 1024;
const MEMO_MAX_ENTRIES = 256;
const MEMO_MAX_TEXT = 2048;

/**
 * Rego compiled by `opa build -t wasm`, run with opa-wasm. The input is serialized once per call and written
 * straight into the instance's memory (opa-eval-text.ts). The data is loaded in a worker (engine-opa-trial.ts)
 * and arrives as a memory image, copied into the serving instance a slice per turn. Memory is bounded two
 * ways: the wasm memory has a hard maximum, and an instance whose memory grew `recycleMemoryPages` past its
 * image (one large input), that trapped or that was stopped at its deadline (`evalDeadline`) is replaced by a
 * fresh one made from the image, so growth never accumulates and no recycle parses the data again.
 */
export class OPAEngine implements PolicyEngine {
  readonly kind = 'opa' as const;
  private readonly entrypointId: number;
  /**
   * Results by the result set's JSON text: most evaluations of a policy give one of a few answers, and one
   * shared result object per answer spares its parse and mapping, and lets the response come from a
   * template (cached-response-encoder.ts). Bounded: texts up to MEMO_MAX_TEXT, MEMO_MAX_ENTRIES of them,
   * emptied when full. A result that is refused (ERR_POLICY_RESULT, …) is never stored: it throws each time.
   */
  private readonly results = new Map<string, PolicyResult>();

  private constructor(
    private readonly module: WebAssembly.Module,
    private readonly image: OPAMemoryImage,
    entrypoint: string,
    private readonly options: EngineOptions,
    private instance: LoadedPolicy,
  ) {
    const entrypoints = this.instance.entrypoints as Record<string, number>;
    // Own keys only: a manifest naming "constructor" or "toString" got an inherited function, which opa_eval
    // took as entrypoint 0, so some other rule decided.
    const id = Object.hasOwn(entrypoints, entrypoint) ? entrypoints[entrypoint] : undefined;
    if (typeof id !== 'number') {
      throw new VerdictError(
        'ERR_BUNDLE_ENGINE',
        `entrypoint ${JSON.stringify(clip(entrypoint, 256))} is not compiled into policy.wasm (has: ${Object.keys(entrypoints).join(', ') || 'none'})`,
      );
    }
    this.entrypointId = id;
  }

  static create: EngineFactory = async (bundle: PolicyBundle, options: EngineOptions) => {
    const modulePath = (bundle.manifest.wasm?.[0]?.module ?? '/policy.wasm').replace(/^\//, '');
    const wasm = bundle.files.get(modulePath);
    if (!wasm) throw new VerdictError('ERR_BUNDLE_ENGINE', `OPA bundle has no ${modulePath}`);
    let module: WebAssembly.Module;
    try {
      module = await WebAssembly.compile(wasm);
    } catch (err) {
      throw new VerdictError('ERR_BUNDLE_ENGINE', `policy.wasm does not compile: ${(err as Error).message}`);
    }
    // A memory image is an instance's whole state only if no global but the stack pointer (which every call
    // restores on return) can change: opa build's modules have exactly that one.
    const mutable = mutableGlobalCount(wasm);
    if (mutable === null || mutable > 1) {
      throw new VerdictError(
        'ERR_BUNDLE_ENGINE',
        `policy.wasm defines ${mutable ?? 'an unreadable set of'} mutable globals; verdict loads OPA data as a memory image, which needs at most one (the stack pointer, as opa build emits)`,
      );
    }
    const dataFile = bundle.files.get('data.json');
    const declared = verdictMetadata(bundle.manifest).entrypoint;
    const entrypoint = typeof declared === 'string' && declared !== '' ? declared : options.entrypoint;
    const trial = await trialRunOPA({
      module,
      data: dataFile && dataFile.length > 0 ? dataFile : null,
      entrypoint,
      input: SELF_TEST_INPUT,
      initialPages: INITIAL_PAGES,
      maxPages: options.maxMemoryPages,
      timeoutMs: options.loadTimeoutMs ?? DEFAULT_LOAD_TIMEOUT_MS,
    });
    const instance = instantiate(module, options.maxMemoryPages);
    for (const _ of copyImage(instance, trial.image, IMAGE_SLICE_BYTES)) await yieldToEventLoop();
    const engine = new OPAEngine(module, trial.image, entrypoint, options, instance);
    if (trial.selfTest !== null && engine.selfTestResultSet() !== trial.selfTest) {
      throw new VerdictError('ERR_BUNDLE_ENGINE', 'policy.wasm answers its self-test differently once its memory image is copied');
    }
    return engine;
  };

  evaluate(input: InputDocument): PolicyResult {
    const text = serializeInput(input);
    let resultText: string;
    let known: PolicyResult | undefined;
    let resultSet: unknown;
    const deadline = this.options.evalDeadline;
    try {
      resultText =
        deadline === undefined
          ? evaluateText(this.instance, this.entrypointId, text)
          : deadline.run(deadline.ms, evaluateText, this.instance, this.entrypointId, text);
      known = this.results.get(resultText);
      if (known === undefined) resultSet = JSON.parse(resultText);
    } catch (err) {
      if (err instanceof VerdictError && err.code === 'ERR_POLICY_INPUT') throw err;
      if (stoppedAtDeadline(err)) {
        // Stopped wherever it was, the instance's memory is half-written: a fresh one from the image.
        this.recycle('timeout');
        throw new VerdictError('ERR_POLICY_TIMEOUT', `evaluation stopped at its ${deadline!.ms} ms budget`);
      }
      this.recycle('trap');
      throw new VerdictError('ERR_POLICY_EVAL', `opa-wasm: ${typeof err === 'string' ? err : (err as Error).message}`);
    }
    // Growth beyond the image: data that itself needs more than recycleMemoryPages must not make every
    // evaluation rebuild the instance.
    if (this.memoryPages() > this.image.pages + this.options.recycleMemoryPages) this.recycle('memory');
    if (known !== undefined) return known;
    const result = resultSetToResult(resultSet);
    if (resultText.length <= MEMO_MAX_TEXT) {
      if (this.results.size >= MEMO_MAX_ENTRIES) this.results.clear();
      this.results.set(resultText, shareResult(result));
    }
    return result;
  }

  /** Current linear memory size, in pages (exposed for tests and metrics). */
  memoryPages(): number {
    return this.instance.mem.buffer.byteLength / WASM_PAGE_BYTES;
  }

  close(): void {
    // The instance and its memory are released with the last reference; nothing to free explicitly.
  }

  private selfTestResultSet(): string | null {
    try {
      return JSON.stringify(JSON.parse(evaluateText(this.instance, this.entrypointId, serializeInput(SELF_TEST_INPUT))));
    } catch {
      return null;
    }
  }

  private recycle(why: string): void {
    const fresh = instantiate(this.module, this.options.maxMemoryPages);
    for (const _ of copyImage(fresh, this.image, Infinity));
    this.instance = fresh;
    this.options.onRecycle?.(why);
  }
}

function instantiate(module: WebAssembly.Module, maxPages: number): LoadedPolicy {
  try {
    return loadPolicySync(module, { initial: INITIAL_PAGES, maximum: maxPages });
  } catch (err) {
    throw new VerdictError(
      'ERR_BUNDLE_ENGINE',
      `policy.wasm fails to instantiate: ${typeof err === 'string' ? err : (err as Error).message}`,
    );
  }
}

/**
 * Copies a memory image into a fresh instance, one slice per step (the caller yields between steps, or
 * runs them in one go), then points the instance at the image's data.
 */
function* copyImage(policy: LoadedPolicy, image: OPAMemoryImage, sliceBytes: number): Generator<void> {
  const have = policy.mem.buffer.byteLength / WASM_PAGE_BYTES;
  if (image.pages > have) policy.mem.grow(image.pages - have);
  const memory = new Uint8Array(policy.mem.buffer);
  for (let off = 0; off < image.bytes.length; off += sliceBytes) {
    memory.set(image.bytes.subarray(off, off + sliceBytes), off);
    yield;
  }
  policy.dataAddr = image.dataAddr;
  policy.dataHeapPtr = image.dataHeapPtr;
}

function resultSetToResult(resultSet: unknown): PolicyResult {
  if (!Array.isArray(resultSet)) throw new VerdictError('ERR_POLICY_RESULT', 'opa-wasm returned no result set');
  if (resultSet.length === 0) throw new VerdictError('ERR_POLICY_UNDEFINED', 'the queried rule is undefined for this input');
  if (resultSet.length > 1) throw new VerdictError('ERR_POLICY_RESULT', 'the queried rule has more than one result');
  return opaValueToResult((resultSet[0] as { result?: unknown }).result);
}
