import type { BundleRef, Decision, ReasonCode } from '../decision/decision';
import type { EngineKind } from '../policy/policy-engine';
import type { PolicyResult } from '../policy/policy-result';

/** The timed steps of a decision (decision.performanceMetrics adds all but eval, which is always timed). */
export type DecisionStep = 'identity' | 'cache' | 'input' | 'eval';

/** One per request, built as the request goes, emitted exactly once. */
export interface DecisionRecord {
  decision_id: string;
  timestamp: string;
  /** 'kernel': an observation made from kernel telemetry, not a Check. */
  protocol: 'grpc' | 'http' | 'kernel';
  /** 'observation': not a decision but evidence (src/kerneltelemetry/); 'shadow': a candidate bundle's disagreement (src/shadow/). Absent for a decision. */
  kind?: 'observation' | 'shadow';
  observation?: Readonly<Record<string, unknown>>;
  bundle?: BundleRef;
  engine?: EngineKind;
  /** The policy input (masking is applied by the log). Absent when the request was refused before it. */
  input?: unknown;
  /** 'full': the input document; 'cache_key': a cache hit, which records only the declared key fields. */
  input_kind?: 'full' | 'cache_key';
  /** What the engine decided (absent when an error denied first). */
  result?: PolicyResult;
  allowed: boolean;
  http_status: number;
  reason: ReasonCode;
  /** Explanation from the engine (rule ids, Cedar policy ids). */
  reasons?: readonly string[];
  cached: boolean;
  fastpath: boolean;
  /** `decision.dryRun`: the policy denied, the response allowed (opa-envoy-plugin's dry-run). */
  dry_run?: true;
  /** Error message for an error reason; never contains request secrets. */
  error?: string;
  /** total and eval always; identity, cache and input when decision.performanceMetrics is on. */
  timings_ns: { total: number } & Partial<Record<DecisionStep, number>>;
  /** The tenant whose bundle decided (config `tenants`); a log label. */
  tenant?: string;
  /** For kind 'shadow': both outcomes, already in the log's JSON shape. */
  shadow?: Record<string, unknown>;
}

/** Where records go. Emit never blocks the Check path and never throws. */
export interface DecisionLog {
  emit(record: DecisionRecord, decision: Decision): void;
  /**
   * Present when records are only counted (no sink): the decision pipeline then calls this instead of
   * building a record for `emit` (unless an observer reads records).
   */
  count?(): void;
  close(): Promise<void>;
}
