import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import { VerdictError, toVerdictError } from '../errors';
import type { PolicyBundle } from './bundle';
import { readBundle } from './bundle-reader';
import { engineFactory } from './engine-registry';
import type { EngineOptions, PolicyEngine } from './policy-engine';

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

  get current(): ActivePolicy | null {
    return this.active;
  }

  async activate(bundle: PolicyBundle): Promise<ActivePolicy> {
    let engine: PolicyEngine;
    try {
      engine = await engineFactory(bundle.engine)(bundle, this.engineOptions);
    } catch (err) {
      const e = toVerdictError(err, 'ERR_BUNDLE_ENGINE');
      this.emit('rejected', e);
      throw e;
    }
    const previous = this.active;
    const current: ActivePolicy = Object.freeze({ bundle, engine, generation: ++this.generation });
    this.active = current;
    this.emit('swap', { previous, current });
    previous?.engine.close();
    return current;
  }

  async activateFile(path: string): Promise<ActivePolicy> {
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      const e = new VerdictError('ERR_BUNDLE_INVALID', `cannot read bundle ${path}: ${(err as Error).message}`);
      this.emit('rejected', e);
      throw e;
    }
    let bundle: PolicyBundle;
    try {
      bundle = await readBundle(bytes, path);
    } catch (err) {
      const e = toVerdictError(err, 'ERR_BUNDLE_INVALID');
      this.emit('rejected', e);
      throw e;
    }
    return this.activate(bundle);
  }
}
