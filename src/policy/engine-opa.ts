import { createRequire } from 'node:module';
import type { LoadedPolicy } from '@open-policy-agent/opa-wasm';
import { VerdictError } from '../errors';
import type { InputDocument } from '../request/input-document';
import { DEFAULT_LOAD_TIMEOUT_MS, type PolicyBundle } from './bundle';
import { verdictMetadata } from './bundle-reader';
import { serializeInput } from './engine-input';
import { trialRunOPA } from './engine-opa-trial';
import { evaluateText } from './opa-eval-text';
import { opaValueToResult } from './opa-result';
import { SELF_TEST_INPUT } from './engine-self-test-input';
import type { EngineFactory, EngineOptions, PolicyEngine } from './policy-engine';
import type { PolicyResult } from './policy-result';

// The package's ESM entry omits loadPolicySync; its CommonJS entry has it.
const { loadPolicySync } = createRequire(__filename)('@open-policy-agent/opa-wasm') as typeof import('@open-policy-agent/opa-wasm');

const WASM_PAGE_BYTES = 64 * 1024;
const INITIAL_PAGES = 5;

/**
 * Rego compiled by `opa build -t wasm`, run with opa-wasm. The input is serialized once per call and written
 * straight into the instance's memory (opa-eval-text.ts). Memory is bounded two ways: the wasm memory has a
 * hard maximum, and an instance whose memory grew `recycleMemoryPages` past what its data needs (one large input) or that
 * trapped is replaced by a fresh one from the already-compiled module, so growth never accumulates.
 */
export class OPAEngine implements PolicyEngine {
  readonly kind = 'opa' as const;
  private instance: LoadedPolicy;
  private readonly entrypointId: number;
  /** Pages an instance holds once its data is loaded: recycling counts growth beyond these. */
  private readonly dataPages: number;

  private constructor(
    private readonly module: WebAssembly.Module,
    private readonly data: ArrayBuffer | null,
    entrypoint: string,
    private readonly options: EngineOptions,
  ) {
    this.instance = this.instantiate();
    this.dataPages = this.memoryPages();
    const entrypoints = this.instance.entrypoints as Record<string, number>;
    const id = entrypoints[entrypoint];
    if (id === undefined) {
      throw new VerdictError(
        'ERR_BUNDLE_ENGINE',
        `entrypoint "${entrypoint}" is not compiled into policy.wasm (has: ${Object.keys(entrypoints).join(', ') || 'none'})`,
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
    const dataFile = bundle.files.get('data.json');
    const data = dataFile && dataFile.length > 0 ? toArrayBuffer(dataFile) : null;
    const declared = verdictMetadata(bundle.manifest).entrypoint;
    const entrypoint = typeof declared === 'string' && declared !== '' ? declared : options.entrypoint;
    await trialRunOPA({
      module,
      data,
      entrypoint,
      input: SELF_TEST_INPUT,
      initialPages: INITIAL_PAGES,
      maxPages: options.maxMemoryPages,
      timeoutMs: options.loadTimeoutMs ?? DEFAULT_LOAD_TIMEOUT_MS,
    });
    return new OPAEngine(module, data, entrypoint, options);
  };

  evaluate(input: InputDocument): PolicyResult {
    const text = serializeInput(input);
    let resultSet: unknown;
    try {
      resultSet = evaluateText(this.instance, this.entrypointId, text);
    } catch (err) {
      this.recycle('trap');
      throw new VerdictError('ERR_POLICY_EVAL', `opa-wasm: ${typeof err === 'string' ? err : (err as Error).message}`);
    }
    // Growth beyond the loaded data: data that itself needs more than recycleMemoryPages must not make
    // every evaluation rebuild the instance (and load the data again).
    if (this.memoryPages() > this.dataPages + this.options.recycleMemoryPages) this.recycle('memory');
    return resultSetToResult(resultSet);
  }

  /** Current linear memory size, in pages (exposed for tests and metrics). */
  memoryPages(): number {
    return this.instance.mem.buffer.byteLength / WASM_PAGE_BYTES;
  }

  close(): void {
    // The instance and its memory are released with the last reference; nothing to free explicitly.
  }

  private instantiate(): LoadedPolicy {
    let policy: LoadedPolicy;
    try {
      policy = loadPolicySync(this.module, { initial: INITIAL_PAGES, maximum: this.options.maxMemoryPages });
      if (this.data) policy.setData(this.data);
    } catch (err) {
      throw new VerdictError(
        'ERR_BUNDLE_ENGINE',
        `policy.wasm fails to instantiate: ${typeof err === 'string' ? err : (err as Error).message}`,
      );
    }
    return policy;
  }

  private recycle(why: string): void {
    this.instance = this.instantiate();
    this.options.onRecycle?.(why);
  }
}

function resultSetToResult(resultSet: unknown): PolicyResult {
  if (!Array.isArray(resultSet)) throw new VerdictError('ERR_POLICY_RESULT', 'opa-wasm returned no result set');
  if (resultSet.length === 0) throw new VerdictError('ERR_POLICY_UNDEFINED', 'the queried rule is undefined for this input');
  if (resultSet.length > 1) throw new VerdictError('ERR_POLICY_RESULT', 'the queried rule has more than one result');
  return opaValueToResult((resultSet[0] as { result?: unknown }).result);
}

function toArrayBuffer(b: Buffer): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}
