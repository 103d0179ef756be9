import type { BundleRef, Decision, ReasonCode } from '../decision/decision';
import type { EngineKind } from '../policy/policy-engine';

/** One per request, built as the request goes, emitted exactly once. */
export interface DecisionRecord {
  decision_id: string;
  timestamp: string;
  protocol: 'grpc' | 'http';
  bundle?: BundleRef;
  engine?: EngineKind;
  /** The policy input (masking is applied by the sink). Absent when the request was refused before it. */
  input?: unknown;
  allowed: boolean;
  http_status: number;
  reason: ReasonCode;
  /** Explanation from the engine (rule ids, Cedar policy ids). */
  reasons?: readonly string[];
  cached: boolean;
  fastpath: boolean;
  /** Error message for an error reason; never contains request secrets. */
  error?: string;
  timings_ns: { total: number; eval?: number };
}

/** Where records go. Emit never blocks the Check path and never throws. */
export interface DecisionLog {
  emit(record: DecisionRecord, decision: Decision): void;
  close(): Promise<void>;
}
