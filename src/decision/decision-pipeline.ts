import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock';
import type { Config } from '../config/schema';
import type { DecisionLog, DecisionRecord } from '../decisionlog/decision-record';
import type { IdentityStep } from '../identity/identity-step';
import { VerdictError, toVerdictError, type ErrorKind } from '../errors';
import type { ActivePolicy, PolicyStore } from '../policy/policy-store';
import type { PolicyResult } from '../policy/policy-result';
import type { CheckRequest, ReceivedCheckRequest } from '../request/check-request';
import { buildInputDocument, type InputDocument } from '../request/input-document';
import type { Metrics } from '../telemetry/metrics';
import type { Decision } from './decision';
import type { DecisionObserver } from './decision-observer';

export interface DecisionPipelineDeps {
  config: Pick<Config, 'limits' | 'policy' | 'decision'>;
  policy: PolicyStore;
  decisionLog: DecisionLog;
  metrics: Metrics;
  clock: Clock;
  /** SPIFFE verification; absent when identity is not configured. */
  identity?: IdentityStep;
  observers?: readonly DecisionObserver[];
}

/**
 * One request: check limits → build input → evaluate → Decision. Fail closed: any error on the way is a
 * deny with its code. One DecisionRecord per request, emitted once, in `finally`.
 */
export class DecisionPipeline {
  constructor(private readonly deps: DecisionPipelineDeps) {}

  async check(req: ReceivedCheckRequest, protocol: DecisionRecord['protocol']): Promise<Decision> {
    const { clock } = this.deps;
    const started = clock.monotonicNs();
    const active = this.deps.policy.current;
    const decision: Decision = {
      id: randomUUID(),
      allowed: false,
      reason: 'ERR_INTERNAL',
      httpStatus: this.deps.config.decision.errorStatus,
    };
    const record: DecisionRecord = {
      decision_id: decision.id,
      timestamp: new Date(clock.nowMs()).toISOString(),
      protocol,
      allowed: false,
      http_status: decision.httpStatus,
      reason: decision.reason,
      cached: false,
      fastpath: false,
      timings_ns: { total: 0 },
    };
    try {
      if (!active) throw new VerdictError('ERR_POLICY_NOT_LOADED');
      this.attachBundle(decision, record, active);
      const input = this.buildInput(req);
      const spiffe = await this.deps.identity?.identify(req.message as CheckRequest);
      if (spiffe) input.spiffe = spiffe;
      record.input = input;
      const evalStarted = clock.monotonicNs();
      const result = await this.evaluate(active, input, evalStarted);
      record.timings_ns.eval = Number(clock.monotonicNs() - evalStarted);
      this.applyResult(decision, result);
    } catch (err) {
      this.applyError(decision, record, toVerdictError(err));
    } finally {
      record.allowed = decision.allowed;
      record.http_status = decision.httpStatus;
      record.reason = decision.reason;
      if (decision.result && decision.result.reasons.length > 0) record.reasons = decision.result.reasons;
      record.timings_ns.total = Number(clock.monotonicNs() - started);
      this.deps.metrics.decisions.inc({
        result: decision.allowed ? 'allow' : 'deny',
        engine: decision.engine ?? 'none',
        reason: decision.reason,
      });
      this.deps.decisionLog.emit(record, decision);
      for (const o of this.deps.observers ?? []) o.observe(record, decision);
    }
    return decision;
  }

  private attachBundle(decision: Decision, record: DecisionRecord, active: ActivePolicy): void {
    const { name, revision, sha256 } = active.bundle;
    decision.bundle = { name, revision, sha256 };
    decision.engine = active.engine.kind;
    record.bundle = decision.bundle;
    record.engine = decision.engine;
  }

  private buildInput(req: ReceivedCheckRequest): InputDocument {
    const { limits } = this.deps.config;
    if (req.message === null || req.wireBytes > limits.maxRequestBytes) {
      throw new VerdictError('ERR_REQUEST_TOO_LARGE', `CheckRequest of ${req.wireBytes} bytes exceeds ${limits.maxRequestBytes}`);
    }
    return buildInputDocument(req.message, limits);
  }

  /** Sync engines are timed after the fact (a late answer is discarded); async ones race a timer. */
  private async evaluate(active: ActivePolicy, input: InputDocument, startedNs: bigint): Promise<PolicyResult> {
    const timeoutMs = this.deps.config.policy.timeoutMs;
    let outcome = active.engine.evaluate(input);
    if (outcome instanceof Promise) outcome = await withTimeout(outcome, timeoutMs);
    const elapsedMs = Number(this.deps.clock.monotonicNs() - startedNs) / 1e6;
    if (elapsedMs > timeoutMs)
      throw new VerdictError('ERR_POLICY_TIMEOUT', `evaluation took ${elapsedMs.toFixed(1)} ms (budget ${timeoutMs} ms)`);
    return outcome;
  }

  private applyResult(decision: Decision, result: PolicyResult): void {
    decision.result = result;
    decision.allowed = result.allowed;
    decision.reason = result.allowed ? 'ALLOWED' : 'DENIED_BY_POLICY';
    decision.httpStatus = result.allowed ? 200 : (result.httpStatus ?? this.deps.config.decision.denyStatus);
  }

  private applyError(decision: Decision, record: DecisionRecord, err: VerdictError): void {
    decision.allowed = false;
    delete decision.result;
    decision.reason = err.code;
    decision.httpStatus = err.httpStatus ?? this.statusFor(err.kind);
    record.error = err.message;
  }

  private statusFor(kind: ErrorKind): number {
    const d = this.deps.config.decision;
    if (kind === 'request') return d.requestErrorStatus;
    if (kind === 'identity') return d.denyStatus;
    return d.errorStatus;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new VerdictError('ERR_POLICY_TIMEOUT', `evaluation exceeded ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
