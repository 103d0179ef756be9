import type { Config } from '../config/schema';
import type { InputDocument } from '../request/input-document';
import type { PolicyBundle } from './bundle';
import { loadEvalDeadline, type EvalDeadline } from './eval-deadline';
import type { PolicyResult } from './policy-result';

export type EngineKind = 'opa' | 'cedar' | 'wasm';

/** One loaded policy, ready to decide. Engines never see gRPC; they see the input document. */
export interface PolicyEngine {
  readonly kind: EngineKind;
  /** Decide for one input. Throws VerdictError (ERR_POLICY_*) on failure; the caller denies. */
  evaluate(input: InputDocument): PolicyResult | Promise<PolicyResult>;
  /** Release the instance (the bundle was swapped out). */
  close(): void;
}

export interface EngineOptions {
  /** Rule path queried when the manifest names none. */
  entrypoint: string;
  maxMemoryPages: number;
  recycleMemoryPages: number;
  /** Deadline of each load step (instantiate + start function, self-test); default DEFAULT_LOAD_TIMEOUT_MS. */
  loadTimeoutMs?: number;
  /**
   * An engine that evaluates on the event loop (OPA) stops an evaluation still running at `ms` with it
   * (ERR_POLICY_TIMEOUT, instance replaced). Without it a slow evaluation is only denied after it returns.
   */
  evalDeadline?: EvalDeadline;
  /** Called when an engine replaces its instance (for metrics). */
  onRecycle?: (why: string) => void;
}

/** Builds an engine from a verified bundle; registered per kind so new engines need no branches elsewhere. */
export type EngineFactory = (bundle: PolicyBundle, options: EngineOptions) => Promise<PolicyEngine>;

/**
 * What every policy store of a server builds its engines with (the active policy, each tenant's, the shadow
 * candidate's): `policy.*`'s bounds, and the evaluation deadline where native/eval-deadline.cc is built.
 */
export function engineOptionsOf(config: Config): EngineOptions {
  const stopper = loadEvalDeadline();
  return {
    entrypoint: config.policy.entrypoint,
    maxMemoryPages: config.policy.maxMemoryPages,
    recycleMemoryPages: config.policy.recycleMemoryPages,
    ...('addon' in stopper ? { evalDeadline: { ms: config.policy.timeoutMs, run: stopper.addon.run } } : {}),
  };
}
