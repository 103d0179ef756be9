import type { Decision } from '../decision/decision';
import type { PolicyResult } from '../policy/policy-result';
import type { DecisionRecord } from './decision-record';

/**
 * One decision in OPA's decision-log event format (decision_id, labels, bundles{name:{revision}}, path,
 * input, result, timestamp, metrics), so OPA log tooling reads it, plus verdict's fields: the bundle sha256,
 * the engine, the reason code, whether the cache or the kernel fast path answered, and `prev_hash` (added
 * when the event joins the hash chain).
 */
export interface DecisionEvent {
  labels: Record<string, string>;
  decision_id: string;
  bundles?: Record<string, { revision: string }>;
  path: string;
  input?: unknown;
  result?: unknown;
  erased?: string[];
  masked?: string[];
  timestamp: string;
  /** OPA's timer names; the verdict_* timers only with decision.performanceMetrics. */
  metrics: { timer_server_handler_ns: number; timer_rego_query_eval_ns?: number } & Record<string, number>;
  // verdict's additions
  bundle_sha256?: string;
  engine?: string;
  reason: string;
  allowed: boolean;
  http_status: number;
  cached: boolean;
  fastpath: boolean;
  /** 'cache_key': a cache hit; `input` holds only the declared key fields (see docs/decisionlog.md). */
  input_kind?: 'full' | 'cache_key';
  protocol: string;
  /** The policy denied, but `decision.dryRun` let the request through. */
  dry_run?: true;
  error?: string;
  /** 'observation': kernel evidence (docs/kernel-telemetry.md); 'shadow': a candidate bundle's disagreement (docs/shadow.md). Absent for a decision. */
  kind?: 'observation' | 'shadow';
  observation?: Readonly<Record<string, unknown>>;
  prev_hash?: string;
  /** For kind 'shadow': both outcomes. */
  shadow?: Record<string, unknown>;
}

export interface EventContext {
  labels: Record<string, string>;
  /** The rule path queried (OPA's `path`). */
  path: string;
}

export function toDecisionEvent(record: DecisionRecord, _decision: Decision, ctx: EventContext): DecisionEvent {
  const e: DecisionEvent = {
    // A tenant is one more label (OPA's labels identify who decided); the shared object is not mutated.
    labels: record.tenant === undefined ? ctx.labels : { ...ctx.labels, tenant: record.tenant },
    decision_id: record.decision_id,
    path: ctx.path,
    timestamp: record.timestamp,
    metrics: { timer_server_handler_ns: record.timings_ns.total },
    reason: record.reason,
    allowed: record.allowed,
    http_status: record.http_status,
    cached: record.cached,
    fastpath: record.fastpath,
    protocol: record.protocol,
  };
  if (record.timings_ns.eval !== undefined) e.metrics.timer_rego_query_eval_ns = record.timings_ns.eval;
  for (const step of ['identity', 'cache', 'input'] as const) {
    const ns = record.timings_ns[step];
    if (ns !== undefined) e.metrics[`timer_verdict_${step}_ns`] = ns;
  }
  if (record.bundle) {
    e.bundles = { [record.bundle.name]: { revision: record.bundle.revision } };
    e.bundle_sha256 = record.bundle.sha256;
  }
  if (record.engine) e.engine = record.engine;
  if (record.input !== undefined) e.input = record.input;
  if (record.input_kind) e.input_kind = record.input_kind;
  if (record.result) e.result = resultToJSON(record.result);
  if (record.error) e.error = record.error;
  if (record.dry_run) e.dry_run = true;
  if (record.kind) e.kind = record.kind;
  if (record.shadow) e.shadow = record.shadow;
  if (record.observation) e.observation = record.observation;
  return e;
}

/** opa-envoy-plugin's result object shape (only the fields that are set). */
export function resultToJSON(r: PolicyResult): Record<string, unknown> {
  const out: Record<string, unknown> = { allowed: r.allowed };
  if (r.httpStatus !== undefined) out.http_status = r.httpStatus;
  if (r.body !== undefined) out.body = r.body;
  if (r.headers.length > 0) out.headers = pairsToObject(r.headers);
  if (r.responseHeadersToAdd.length > 0) out.response_headers_to_add = pairsToObject(r.responseHeadersToAdd);
  if (r.requestHeadersToRemove.length > 0) out.request_headers_to_remove = r.requestHeadersToRemove;
  if (r.queryParametersToSet.length > 0) out.query_parameters_to_set = pairsToObject(r.queryParametersToSet);
  if (r.queryParametersToRemove.length > 0) out.query_parameters_to_remove = r.queryParametersToRemove;
  if (r.dynamicMetadata) out.dynamic_metadata = r.dynamicMetadata;
  if (r.reasons.length > 0) out.reasons = r.reasons;
  return out;
}

function pairsToObject(pairs: readonly (readonly [string, string])[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of pairs) {
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}
