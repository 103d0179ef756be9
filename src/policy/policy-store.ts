import { EventEmitter } from 'node:events';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { VerdictError, toVerdictError } from '../errors';
import { DEFAULT_BUNDLE_LIMITS, DEFAULT_LOAD_TIMEOUT_MS, type BundleLimits, type PolicyBundle } from './bundle';
import { assembleBundle } from './bundle-reader';
import { checkBundleRoots } from './bundle-roots';
import { StagedBundle, stagingFor } from './bundle-staged';
import { untarBounded } from './bundle-untar';
import { engineFactory } from './engine-registry';
import { SELF_TEST_INPUT } from './engine-self-test-input';
import type { EngineOptions, PolicyEngine } from './policy-engine';

/** Codes that mean the engine evaluated and the policy's answer was unusable (not that the engine failed). */
const ANSWERED: ReadonlySet<string> = new Set(['ERR_POLICY_UNDEFINED', 'ERR_POLICY_RESULT']);

/** The bundle a request is decided with: taken once at the start of a request, used to its end. */
export interface ActivePolicy {
  readonly bundle: PolicyBundle;
  readonly engine: PolicyEngine;
  /** Increases with every swap; caches and the kernel map key on it (with the sha256). */
  readonly generation: number;
}

export interface SwapEvent {
  previous: ActivePolicy | null;
  current: ActivePolicy;
}

/**
 * Holds the active policy and swaps it atomically: a new bundle is instantiated fully before the
 * reference changes, and a bundle that fails anywhere never replaces the one serving.
 */
export class PolicyStore extends EventEmitter<{ swap: [SwapEvent]; rejected: [VerdictError] }> {
  private active: ActivePolicy | null = null;
  private generation = 0;

  constructor(private readonly engineOptions: EngineOptions) {
    super();
  }

  private get loadTimeoutMs(): number {
    return this.engineOptions.loadTimeoutMs ?? DEFAULT_LOAD_TIMEOUT_MS;
  }

  get current(): ActivePolicy | null {
    return this.active;
  }

  async activate(bundle: PolicyBundle): Promise<ActivePolicy> {
    let engine: PolicyEngine;
    try {
      const building = Promise.resolve().then(() => engineFactory(bundle.engine)(bundle, this.engineOptions));
      // An engine that turns up after its deadline is closed, never served.
      engine = await withDeadline(building, this.loadTimeoutMs, `instantiating bundle ${bundle.name}`, (late) => late.close());
    } catch (err) {
      throw this.refuse(toVerdictError(err, 'ERR_BUNDLE_ENGINE'));
    }
    // Yield between the synchronous pieces (instantiate, first evaluation) so Checks run in between:
    // no single event-loop turn carries a whole swap.
    await yieldToEventLoop();
    await this.selfTest(engine, bundle);
    await yieldToEventLoop();
    const previous = this.active;
    const current: ActivePolicy = Object.freeze({ bundle, engine, generation: ++this.generation });
    this.active = current;
    this.emit('swap', { previous, current });
    previous?.engine.close();
    return current;
  }

  /** Records a refused bundle (counted and logged by the 'rejected' listeners); returns the error to throw. */
  refuse(err: VerdictError): VerdictError {
    this.emit('rejected', err);
    return err;
  }

  /**
   * The self-test asks whether the engine runs, not what the policy answers: an undefined decision or a
   * result of the wrong shape for this synthetic request passes (the engine ran; such requests are denied
   * one by one, fail-closed). A failure to evaluate — a trap, a conflict, a timeout — refuses the bundle.
   */
  private async selfTest(engine: PolicyEngine, bundle: PolicyBundle): Promise<void> {
    try {
      await withDeadline(
        Promise.resolve().then(() => engine.evaluate(SELF_TEST_INPUT)),
        this.loadTimeoutMs,
        'self-test',
      );
    } catch (err) {
      if (err instanceof VerdictError && ANSWERED.has(err.code)) return;
      if (err instanceof VerdictError && err.code === 'ERR_BUNDLE_LOAD_TIMEOUT') {
        engine.close();
        throw this.refuse(err);
      }
      engine.close();
      throw this.refuse(
        new VerdictError(
          'ERR_BUNDLE_SELF_TEST',
          `bundle ${bundle.name} (${bundle.sha256.slice(0, 12)}) fails its self-test: ${toVerdictError(err).message}`,
        ),
      );
    }
  }

  /**
   * Reads a local bundle (regular file, bounded like any delivery) in a bundle worker, the way a watched
   * file is read (bundle-staged.ts), then activates it.
   */
  async activateFile(path: string, limits: BundleLimits = DEFAULT_BUNDLE_LIMITS): Promise<ActivePolicy> {
    let bundle: PolicyBundle;
    try {
      const staging = stagingFor(limits, this.loadTimeoutMs);
      const staged = await StagedBundle.fromFile(path, limits.maxCompressedBytes, 'bundle', staging);
      try {
        const { files } = await untarBounded(staged, limits, { timeoutMs: staging.timeoutMs });
        bundle = assembleBundle(files, path, staged.sha256, staged.size);
      } finally {
        staged.close();
      }
      checkBundleRoots(bundle);
    } catch (err) {
      throw this.refuse(toVerdictError(err, 'ERR_BUNDLE_INVALID'));
    }
    return this.activate(bundle);
  }
}

/**
 * Races one asynchronous load step against its deadline (ERR_BUNDLE_LOAD_TIMEOUT). Steps that cannot be
 * interrupted from here (a worker's start function) stop themselves on their own deadline; this bound
 * guarantees the serialized load queue moves on whatever a step does.
 */
export function withDeadline<T>(work: Promise<T>, ms: number, step: string, onLate?: (value: T) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      reject(new VerdictError('ERR_BUNDLE_LOAD_TIMEOUT', `${step} ran past its ${ms} ms deadline`));
    }, ms);
    work.then(
      (value) => {
        clearTimeout(timer);
        if (late) onLate?.(value);
        else resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        if (!late) reject(err as Error);
      },
    );
  });
}
