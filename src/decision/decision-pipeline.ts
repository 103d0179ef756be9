import { randomUUID } from 'node:crypto';
import type { CachePlan } from '../cache/cache-plan';
import { expiryFor } from '../cache/cache-plan';
import { inputKey, requestKey, requestKeyFields } from '../cache/cache-key';
import type { DecisionCache } from '../cache/decision-cache';
import type { CachePlanner } from '../cache/cache-plan';
import { precheckForCache } from '../cache/request-precheck';
import type { Clock } from '../clock';
import type { Config } from '../config/schema';
import type { DecisionLog, DecisionRecord } from '../decisionlog/decision-record';
import type { IdentityStep } from '../identity/identity-step';
import { VerdictError, toVerdictError, type ErrorKind } from '../errors';
import type { ActivePolicy, PolicyStore } from '../policy/policy-store';
import type { PolicyResult } from '../policy/policy-result';
import type { CheckRequest, ReceivedCheckRequest } from '../request/check-request';
import { buildInputDocument, type InputDocument, type SPIFFEInput } from '../request/input-document';
import type { Metrics } from '../telemetry/metrics';
import type { Decision } from './decision';
import type { DecisionObserver } from './decision-observer';

export interface DecisionPipelineDeps {
  config: Pick<Config, 'limits' | 'policy' | 'decision'> & { cache?: Pick<Config['cache'], 'maxKeyBytes'> };
  policy: PolicyStore;
  decisionLog: DecisionLog;
  metrics: Metrics;
  clock: Clock;
  /** SPIFFE verification; absent when identity is not configured. */
  identity?: IdentityStep;
  /** Decision cache and the per-bundle plan; absent when caching is off. */
  cache?: { store: DecisionCache; planner: CachePlanner };
  observers?: readonly DecisionObserver[];
}

/** One request as it goes through the steps. */
interface Flight {
  readonly decision: Decision;
  readonly record: DecisionRecord;
  readonly startedNs: bigint;
  active?: ActivePolicy;
  message?: CheckRequest;
  /** The decoded request holds an ExactNumber (ReceivedCheckRequest.exactNumbers). */
  exactNumbers: boolean;
  spiffe: SPIFFEInput | null;
  plan: CachePlan | null;
  cacheKey?: string;
}

const DEFAULT_MAX_KEY_BYTES = 4096;

/**
 * One request: policy → limits → identity → cache → input → evaluate → Decision. Fail closed: any error on
 * the way is a deny with its code. One DecisionRecord per request, emitted once, in `finally`.
 */
export class DecisionPipeline {
  constructor(private readonly deps: DecisionPipelineDeps) {}

  async check(req: ReceivedCheckRequest, protocol: DecisionRecord['protocol']): Promise<Decision> {
    const f = this.begin(protocol);
    try {
      const active = this.takePolicy(f);
      const message = this.checkLimits(f, req);
      await this.identify(f, message);
      if (this.answerFromCache(f, active, message)) return f.decision;
      await this.evaluateAndStore(f, active, message);
    } catch (err) {
      this.applyError(f, toVerdictError(err));
    } finally {
      this.finish(f);
    }
    return f.decision;
  }

  private begin(protocol: DecisionRecord['protocol']): Flight {
    const { clock } = this.deps;
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
    return { decision, record, startedNs: clock.monotonicNs(), exactNumbers: false, spiffe: null, plan: null };
  }

  /** The bundle is taken once: the whole request is decided with it, even if a swap happens meanwhile. */
  private takePolicy(f: Flight): ActivePolicy {
    const active = this.deps.policy.current;
    if (!active) throw new VerdictError('ERR_POLICY_NOT_LOADED');
    const { name, revision, sha256 } = active.bundle;
    f.decision.bundle = { name, revision, sha256 };
    f.decision.engine = active.engine.kind;
    f.record.bundle = f.decision.bundle;
    f.record.engine = f.decision.engine;
    f.active = active;
    return active;
  }

  private checkLimits(f: Flight, req: ReceivedCheckRequest): CheckRequest {
    const { limits } = this.deps.config;
    // A request that did not decode (or broke a bound while decoding) is refused, never evaluated.
    if (req.refusal) throw req.refusal;
    if (req.message === null || req.wireBytes > limits.maxRequestBytes) {
      throw new VerdictError('ERR_REQUEST_TOO_LARGE', `CheckRequest of ${req.wireBytes} bytes exceeds ${limits.maxRequestBytes}`);
    }
    f.message = req.message;
    f.exactNumbers = req.exactNumbers === true;
    return req.message;
  }

  private async identify(f: Flight, message: CheckRequest): Promise<void> {
    const identity = this.deps.identity;
    if (identity) f.spiffe = (await identity.identify(message)) ?? null;
  }

  /** A hit answers without building the input document; the log records the key fields instead. */
  private answerFromCache(f: Flight, active: ActivePolicy, message: CheckRequest): boolean {
    const cache = this.deps.cache;
    f.plan = cache?.planner.planFor(active) ?? null;
    if (!cache || !f.plan) return false;
    if (precheckForCache(message, this.deps.config.limits) === 'bypass') return this.bypass(f);
    if (!f.plan.requestKeyable) return false; // keyed from the built input in evaluateAndStore
    const key = requestKey(f.plan.sha256, f.plan.declaration, message, f.spiffe);
    if (key.length > (this.deps.config.cache?.maxKeyBytes ?? DEFAULT_MAX_KEY_BYTES)) return this.bypass(f);
    f.cacheKey = key;
    const result = cache.store.get(key);
    if (result === undefined) return false;
    f.record.cached = true;
    f.record.input_kind = 'cache_key';
    f.record.input = requestKeyFields(f.plan.declaration, message, f.spiffe);
    this.applyResult(f, result);
    return true;
  }

  private bypass(f: Flight): false {
    this.deps.cache?.store.bypassed();
    f.plan = null;
    return false;
  }

  private async evaluateAndStore(f: Flight, active: ActivePolicy, message: CheckRequest): Promise<void> {
    const input = await buildInputDocument(message, this.deps.config.limits, f.exactNumbers);
    if (f.spiffe) input.spiffe = f.spiffe;
    f.record.input = input;
    f.record.input_kind = 'full';
    const cache = this.deps.cache;
    if (cache && f.plan && f.cacheKey === undefined) {
      const key = this.inputCacheKey(f.plan, input);
      if (key !== undefined) f.cacheKey = key;
    }
    if (!cache || !f.plan || f.cacheKey === undefined) return this.applyResult(f, await this.evaluate(f, active, input));
    const hit = f.plan.requestKeyable ? undefined : cache.store.get(f.cacheKey);
    if (hit) {
      f.record.cached = true;
      return this.applyResult(f, hit);
    }
    const { declaration } = f.plan;
    const { result, outcome } = await cache.store.evaluate(
      f.cacheKey,
      () => this.evaluate(f, active, input),
      (r) => expiryFor(declaration, this.deps.clock.nowMs(), f.spiffe, r),
    );
    // A coalesced caller shares the one evaluation made for an identical in-flight request.
    if (outcome === 'coalesced') f.record.cached = true;
    this.applyResult(f, result);
  }

  private inputCacheKey(plan: CachePlan, input: InputDocument): string | undefined {
    const key = inputKey(plan.sha256, plan.declaration, input);
    if (key.length <= (this.deps.config.cache?.maxKeyBytes ?? DEFAULT_MAX_KEY_BYTES)) return key;
    this.deps.cache?.store.bypassed();
    return undefined;
  }

  /** Sync engines are timed after the fact (a late answer is discarded); async ones race a timer. */
  private async evaluate(f: Flight, active: ActivePolicy, input: InputDocument): Promise<PolicyResult> {
    const { clock } = this.deps;
    const timeoutMs = this.deps.config.policy.timeoutMs;
    const startedNs = clock.monotonicNs();
    let outcome = active.engine.evaluate(input);
    if (outcome instanceof Promise) outcome = await withTimeout(outcome, timeoutMs);
    const elapsedNs = clock.monotonicNs() - startedNs;
    f.record.timings_ns.eval = Number(elapsedNs);
    if (Number(elapsedNs) / 1e6 > timeoutMs)
      throw new VerdictError('ERR_POLICY_TIMEOUT', `evaluation took ${(Number(elapsedNs) / 1e6).toFixed(1)} ms (budget ${timeoutMs} ms)`);
    return outcome;
  }

  private applyResult(f: Flight, result: PolicyResult): void {
    const { decision } = f;
    decision.result = result;
    decision.allowed = result.allowed;
    decision.reason = result.allowed ? 'ALLOWED' : 'DENIED_BY_POLICY';
    decision.httpStatus = result.allowed ? 200 : (result.httpStatus ?? this.deps.config.decision.denyStatus);
  }

  private applyError(f: Flight, err: VerdictError): void {
    const { decision } = f;
    decision.allowed = false;
    delete decision.result;
    decision.reason = err.code;
    decision.httpStatus = err.httpStatus ?? this.statusFor(err.kind);
    if (err.code === 'ERR_REQUEST_PARSE' || err.code === 'ERR_REQUEST_BODY_PARSE') decision.parseError = err.message;
    f.record.error = err.message;
  }

  private finish(f: Flight): void {
    const { decision, record } = f;
    record.allowed = decision.allowed;
    record.http_status = decision.httpStatus;
    record.reason = decision.reason;
    if (decision.result) record.result = decision.result;
    if (decision.result && decision.result.reasons.length > 0) record.reasons = decision.result.reasons;
    record.timings_ns.total = Number(this.deps.clock.monotonicNs() - f.startedNs);
    this.deps.metrics.decisions.inc({
      result: decision.allowed ? 'allow' : 'deny',
      engine: decision.engine ?? 'none',
      reason: decision.reason,
    });
    this.deps.decisionLog.emit(record, decision);
    for (const o of this.deps.observers ?? []) o.observe(record, decision);
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
