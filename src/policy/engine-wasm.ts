import { Worker } from 'node:worker_threads';
import type { EnginesConfig } from '../config/sections/engines';
import { DEFAULT_ENGINES_CONFIG } from '../config/sections/engines-defaults';
import { VerdictError } from '../errors';
import type { InputDocument } from '../request/input-document';
import { DEFAULT_LOAD_TIMEOUT_MS, type PolicyBundle } from './bundle';
import { verdictMetadata } from './bundle-reader';
import { serializeInput } from './engine-input';
import { inspectWasmModule } from './engine-wasm-module';
import { CTRL, STATE, STATUS, WASM_WORKER_SOURCE } from './engine-wasm-worker';
import { opaValueToResult } from './opa-result';
import type { EngineFactory, PolicyEngine } from './policy-engine';
import type { PolicyResult } from './policy-result';

export type WasmSettings = EnginesConfig['wasm'];

/** Default module path in a 'wasm' bundle; the manifest may name another (metadata.verdict.module). */
export const DEFAULT_ENGINE_MODULE = 'engine.wasm';

/**
 * A custom engine: any module with verdict's small ABI (docs/engines.md), instantiated with no imports, run
 * in a worker thread so a call that never returns can be stopped. The host hands the input over shared
 * memory and waits on it with a deadline (Atomics.wait): no event-loop round trip per call. On the
 * deadline the worker is terminated and a new one started; the call is denied (ERR_POLICY_TIMEOUT).
 */
export class WasmEngine implements PolicyEngine {
  readonly kind = 'wasm' as const;
  private readonly ctrl: Int32Array;
  private readonly data: Uint8Array;
  private readonly encoder = new TextEncoder();
  private worker: Worker | null = null;
  private ready: Promise<void> = Promise.resolve();
  private isReady = false;
  private closed = false;
  /** Workers started after a timeout (for tests and metrics). */
  restarts = 0;

  private constructor(
    private readonly module: WebAssembly.Module,
    private readonly settings: WasmSettings,
  ) {
    this.ctrl = new Int32Array(new SharedArrayBuffer(CTRL.SLOTS * 4));
    this.data = new Uint8Array(new SharedArrayBuffer(settings.maxInputBytes + settings.maxOutputBytes));
  }

  static factory(settings: WasmSettings = DEFAULT_ENGINES_CONFIG.wasm): EngineFactory {
    return (bundle: PolicyBundle, options) => WasmEngine.load(bundle, settings, options.loadTimeoutMs);
  }

  /**
   * Compiles, checks and starts the module in its worker. Instantiation runs the module's start function
   * (WebAssembly core spec §4.5.4, step 15): one that never returns is stopped at `loadTimeoutMs` — the
   * worker is terminated and the bundle refused with ERR_BUNDLE_LOAD_TIMEOUT.
   */
  static async load(
    bundle: PolicyBundle,
    settings: WasmSettings = DEFAULT_ENGINES_CONFIG.wasm,
    loadTimeoutMs: number = DEFAULT_LOAD_TIMEOUT_MS,
  ): Promise<WasmEngine> {
    const declared = verdictMetadata(bundle.manifest).module;
    const path = (typeof declared === 'string' && declared !== '' ? declared : DEFAULT_ENGINE_MODULE).replace(/^\//, '');
    const bytes = bundle.files.get(path);
    if (!bytes) throw new VerdictError('ERR_BUNDLE_ENGINE', `wasm bundle has no /${path}`);
    const { module } = await inspectWasmModule(bytes, settings.maxMemoryPages);
    const engine = new WasmEngine(module, settings);
    engine.spawn();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(new VerdictError('ERR_BUNDLE_LOAD_TIMEOUT', `custom engine did not start within ${loadTimeoutMs} ms (start function)`)),
        loadTimeoutMs,
      );
    });
    try {
      await Promise.race([engine.ready, deadline]);
    } catch (err) {
      engine.close();
      throw err;
    } finally {
      clearTimeout(timer);
    }
    return engine;
  }

  evaluate(input: InputDocument): PolicyResult | Promise<PolicyResult> {
    if (this.closed) throw new VerdictError('ERR_POLICY_NOT_LOADED', 'custom engine is closed');
    if (!this.isReady) return this.ready.then(() => this.call(input));
    return this.call(input);
  }

  close(): void {
    this.closed = true;
    void this.worker?.terminate();
    this.worker = null;
  }

  private call(input: InputDocument): PolicyResult {
    const len = this.writeInput(input);
    const deadline = performance.now() + this.settings.timeoutMs;
    Atomics.store(this.ctrl, CTRL.INPUT_LEN, len);
    Atomics.store(this.ctrl, CTRL.STATE, STATE.REQUEST);
    Atomics.notify(this.ctrl, CTRL.STATE);
    while (Atomics.load(this.ctrl, CTRL.STATE) === STATE.REQUEST) {
      const left = deadline - performance.now();
      if (left <= 0) return this.stopRunaway();
      Atomics.wait(this.ctrl, CTRL.STATE, STATE.REQUEST, left);
    }
    const status = this.ctrl[CTRL.STATUS];
    const out = Buffer.from(this.data.buffer, this.settings.maxInputBytes, this.ctrl[CTRL.OUTPUT_LEN]).toString('utf8');
    Atomics.store(this.ctrl, CTRL.STATE, STATE.IDLE);
    if (status === STATUS.TRAP) throw new VerdictError('ERR_POLICY_EVAL', `custom engine trapped: ${out}`);
    if (status !== STATUS.OK) throw new VerdictError('ERR_POLICY_RESULT', `custom engine: ${out}`);
    return parseDecision(out);
  }

  private writeInput(input: InputDocument): number {
    const json = serializeInput(input);
    const { read, written } = this.encoder.encodeInto(json, this.data.subarray(0, this.settings.maxInputBytes));
    // encodeInto stops at the end of the region: a cut input is refused, never evaluated.
    if (read < json.length)
      throw new VerdictError('ERR_POLICY_INPUT', `input exceeds the custom engine's ${this.settings.maxInputBytes} bytes`);
    return written;
  }

  private stopRunaway(): never {
    const timeoutMs = this.settings.timeoutMs;
    this.restarts++;
    void this.worker?.terminate();
    this.spawn();
    throw new VerdictError('ERR_POLICY_TIMEOUT', `custom engine ran past ${timeoutMs} ms; its worker was stopped`);
  }

  private spawn(): void {
    this.isReady = false;
    Atomics.store(this.ctrl, CTRL.STATE, STATE.IDLE);
    const worker = new Worker(WASM_WORKER_SOURCE, {
      eval: true,
      workerData: {
        module: this.module,
        ctrlBuffer: this.ctrl.buffer,
        dataBuffer: this.data.buffer,
        maxInputBytes: this.settings.maxInputBytes,
        maxOutputBytes: this.settings.maxOutputBytes,
      },
      // Bounds the worker's own JS heap; the module's memory is bounded by its declared maximum.
      resourceLimits: { maxOldGenerationSizeMb: 64, maxYoungGenerationSizeMb: 16 },
    });
    worker.unref();
    this.worker = worker;
    this.ready = new Promise<void>((resolve, reject) => {
      worker.once('message', () => {
        if (this.worker === worker) this.isReady = true;
        resolve();
      });
      worker.once('error', (err) => reject(new VerdictError('ERR_BUNDLE_ENGINE', `custom engine worker failed: ${err.message}`)));
      worker.once('exit', () => reject(new VerdictError('ERR_POLICY_EVAL', 'custom engine worker exited')));
    });
    this.ready.catch(() => undefined);
  }
}

function parseDecision(text: string): PolicyResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new VerdictError('ERR_POLICY_RESULT', `custom engine returned no JSON decision (${text.length} bytes)`);
  }
  return opaValueToResult(value);
}
