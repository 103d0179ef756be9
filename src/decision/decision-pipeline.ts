import type { GRPCBodyTypes } from '../request/grpc-body-types';
import type { CachePlan } from '../cache/cache-plan';
import { expiryFor } from '../cache/cache-plan';
import { inputKey, keyFieldsFromValues, keyFromValues, requestKeyValues } from '../cache/cache-key';
import type { DecisionCache } from '../cache/decision-cache';
import type { CachePlanner } from '../cache/cache-plan';
import { precheckForCache } from '../cache/request-precheck';
import type { Clock } from '../clock';
import type { Config } from '../config/schema';
import type { DecisionLog, DecisionRecord, DecisionStep } from '../decisionlog/decision-record';
import type { IdentityStep } from '../identity/identity-step';
import type { OIDCTokenStep } from '../identity/oidc-token-step';
import type { TokenInput } from '../identity/oidc-token-verifier';
import { VerdictError, toVerdictError, type ErrorKind } from '../errors';
import type { ActivePolicy, PolicyStore } from '../policy/policy-store';
import type { PolicyResult } from '../policy/policy-result';
import type { CheckRequest, ReceivedCheckRequest } from '../request/check-request';
import { buildInputDocument, type InputDocument, type RequestLimits, type SPIFFEInput } from '../request/input-document';
import type { Metrics } from '../telemetry/metrics';
import type { TenantRouter } from '../tenancy/tenant-router';
import type { CheckTrace, CheckTracer, TraceStep } from '../telemetry/tracing';
import type { Decision } from './decision';
import { newDecisionId } from './decision-id';
import type { DecisionObserver } from './decision-observer';

export interface DecisionPipelineDeps {
  config: Pick<Config, 'limits' | 'policy' | 'decision'> & { cache?: Pick<Config['cache'], 'maxKeyBytes'> };
  policy: PolicyStore;
  decisionLog: DecisionLog;
  metrics: Metrics;
  clock: Clock;
  /** SPIFFE verification; absent when identity is not configured. */
  identity?: IdentityStep;
  /** OIDC / JWT tokens (identity.jwt.issuers) into input.token; absent when no issuer is configured. */
  tokens?: OIDCTokenStep;
  /** Decision cache and the per-bundle plan; absent when caching is off. */
  cache?: { store: DecisionCache; planner: CachePlanner };
  observers?: readonly DecisionObserver[];
  /** policy.protoDescriptor's message types (gRPC request bodies); absent when not configured. */
  grpcBodyTypes?: GRPCBodyTypes;
  /** Tenants (config `tenants`): the request's tenant's bundle and cache decide; absent when not configured. */
  tenants?: TenantRouter;
  /** OpenTelemetry spans per Check; absent when tracing is off (then no tracing work at all). */
  tracer?: CheckTracer;
}

/** One request as it goes through the steps; its DecisionRecord is built from it in `finish`, when one is read. */
interface Flight {
  readonly decision: Decision;
  readonly protocol: DecisionRecord['protocol'];
  /** When the request arrived (wall ms, monotonic ns); read only when records are built. */
  readonly startedMs: number;
  readonly startedNs: bigint;
  /** The record's `cached`: a hit, or a coalesced caller of an identical in-flight evaluation. */
  recordCached: boolean;
  /** On a cache hit: the declared key fields' values (the record logs those instead of the input). */
  keyValues?: readonly unknown[];
  /** The deny's error message. */
  error?: string;
  /** The tenant whose bundle decided. */
  tenant?: string;
  /** Evaluation time, and with decision.performanceMetrics each step's. */
  timings?: Partial<Record<DecisionStep, number>>;
  active?: ActivePolicy;
  message?: CheckRequest;
  /** Its size on the wire (observers that keep the request count it). */
  wireBytes?: number;
  /** The decoded request holds an ExactNumber (ReceivedCheckRequest.exactNumbers). */
  exactNumbers: boolean;
  spiffe: SPIFFEInput | null;
  plan: CachePlan | null;
  cacheKey?: string;
  /** The built input document (for observers such as the shadow evaluator). */
  input?: InputDocument;
  /** The verified OIDC / JWT token (input.token). */
  token?: TokenInput;
  /** The decision cache this request uses (the tenant's, with tenants). */
  cache?: { store: DecisionCache; planner: CachePlanner } | undefined;
  trace: CheckTrace | null;
}

const DEFAULT_MAX_KEY_BYTES = 4096;

/**
 * One request: policy → limits → identity → cache → input → evaluate → Decision. Fail closed: any error on
 * the way is a deny with its code. One DecisionRecord per request, emitted once, in `finish`.
 */
export class DecisionPipeline {
  private readonly requestLimits: RequestLimits;
  /**
   * No sink and no observer reads a record (the default): each decision is only counted, and no record, no
   * key-field object, timestamp or total time is made for it.
   */
  private readonly countOnly: boolean;
  // The record's ISO timestamp, formatted once per millisecond (at saturation ~10 Checks share one).
  private stampMs = Number.NaN;
  private stamp = '';
  private bundleMemo: { active: ActivePolicy; bundle: NonNullable<Decision['bundle']> } | undefined;

  constructor(private readonly deps: DecisionPipelineDeps) {
    const { limits, policy } = deps.config;
    this.requestLimits = { ...limits, skipBodyParse: policy.skipRequestBodyParse, grpcBodyTypes: deps.grpcBodyTypes };
    this.countOnly = deps.decisionLog.count !== undefined && (deps.observers ?? []).length === 0;
  }

  /**
   * callHeaders: the transport's own request headers (gRPC call metadata). When they carry a trace
   * context (Envoy's ext_authz client span, with Envoy tracing on) it wins over the CheckRequest's
   * HTTP headers (the downstream caller's context).
   */
  check(
    req: ReceivedCheckRequest,
    protocol: DecisionRecord['protocol'],
    callHeaders?: Readonly<Record<string, string>>,
  ): Decision | Promise<Decision> {
    const f = this.begin(protocol, req, callHeaders);
    let pending: Promise<void> | undefined;
    try {
      pending = this.decide(f, req);
    } catch (err) {
      this.applyError(f, toVerdictError(err));
    }
    // A cache hit with nothing to verify is answered here, synchronously: no promise, no microtask turn.
    if (pending === undefined) return this.finish(f);
    return pending.then(
      () => this.finish(f),
      (err: unknown) => (this.applyError(f, toVerdictError(err)), this.finish(f)),
    );
  }

  /** Policy, limits, identity, cache, evaluation; a promise only when a step has to wait. */
  private decide(f: Flight, req: ReceivedCheckRequest): Promise<void> | undefined {
    const global = this.takePolicy(f);
    const message = this.checkLimits(f, req);
    const t0 = this.stepStart();
    if (this.deps.tokens || this.deps.identity || f.trace) return this.identifyThenDecide(f, global, message, t0);
    this.stepEnd(f, 'identity', t0);
    return this.decideFor(f, global, message);
  }

  private async identifyThenDecide(f: Flight, global: ActivePolicy, message: CheckRequest, t0: bigint): Promise<void> {
    await this.step(f, 'identity', () => this.identify(f, message));
    this.stepEnd(f, 'identity', t0);
    await this.decideFor(f, global, message);
  }

  private decideFor(f: Flight, global: ActivePolicy, message: CheckRequest): Promise<void> | undefined {
    const active = this.deps.tenants ? this.takeTenantPolicy(f, message) : global;
    const t1 = this.stepStart();
    // Without a trace, no closure for the step (it was allocated on every hit).
    const hit = f.trace ? f.trace.step('cache', () => this.answerFromCache(f, active, message)) : this.answerFromCache(f, active, message);
    this.stepEnd(f, 'cache', t1);
    if (hit) return undefined;
    return this.step(f, 'evaluate', () => this.evaluateAndStore(f, active, message));
  }

  private step<T>(f: Flight, name: TraceStep, fn: () => T): T {
    return f.trace ? f.trace.step(name, fn) : fn();
  }

  private begin(protocol: DecisionRecord['protocol'], req: ReceivedCheckRequest, callHeaders?: Readonly<Record<string, string>>): Flight {
    const { clock } = this.deps;
    const decision: Decision = {
      id: newDecisionId(),
      allowed: false,
      reason: 'ERR_INTERNAL',
      httpStatus: this.deps.config.decision.errorStatus,
    };
    // The caller's trace context rides in the CheckRequest's HTTP headers (traceparent / b3).
    const trace = this.deps.tracer?.startCheck(req.message?.attributes?.request?.http?.headers, callHeaders) ?? null;
    return {
      decision,
      protocol,
      startedMs: this.countOnly ? 0 : clock.nowMs(),
      startedNs: this.countOnly ? 0n : clock.monotonicNs(),
      recordCached: false,
      exactNumbers: false,
      spiffe: null,
      plan: null,
      cache: this.deps.cache,
      trace,
    };
  }

  private timestamp(ms: number): string {
    if (ms !== this.stampMs) {
      this.stamp = new Date(ms).toISOString();
      this.stampMs = ms;
    }
    return this.stamp;
  }

  /** The bundle is taken once: the whole request is decided with it, even if a swap happens meanwhile. */
  private takePolicy(f: Flight, store: PolicyStore = this.deps.policy): ActivePolicy {
    const active = store.current;
    if (!active) throw new VerdictError('ERR_POLICY_NOT_LOADED');
    f.decision.bundle = this.bundleOf(active);
    f.decision.engine = active.engine.kind;
    f.active = active;
    return active;
  }

  /** The decision's `bundle`, made once per active bundle and shared (frozen: nothing writes to it). */
  private bundleOf(active: ActivePolicy): NonNullable<Decision['bundle']> {
    if (this.bundleMemo?.active !== active) {
      const { name, revision, sha256 } = active.bundle;
      this.bundleMemo = { active, bundle: Object.freeze({ name, revision, sha256 }) };
    }
    return this.bundleMemo.bundle;
  }

  /** The tenant is chosen after identity (a selector may be the caller's trust domain); its bundle and cache decide. */
  private takeTenantPolicy(f: Flight, message: CheckRequest): ActivePolicy {
    // The global bundle taken first does not decide here: a request that names no tenant names no bundle.
    delete f.decision.bundle;
    delete f.decision.engine;
    const tenant = this.deps.tenants!.route(message, f.spiffe);
    f.tenant = tenant.name;
    f.cache = tenant.cache ?? undefined;
    return this.takePolicy(f, tenant.policy);
  }

  private checkLimits(f: Flight, req: ReceivedCheckRequest): CheckRequest {
    const { limits } = this.deps.config;
    // A request that did not decode (or broke a bound while decoding) is refused, never evaluated.
    if (req.refusal) throw req.refusal;
    if (req.message === null || req.wireBytes > limits.maxRequestBytes) {
      throw new VerdictError('ERR_REQUEST_TOO_LARGE', `CheckRequest of ${req.wireBytes} bytes exceeds ${limits.maxRequestBytes}`);
    }
    f.message = req.message;
    f.wireBytes = req.wireBytes;
    f.exactNumbers = req.exactNumbers === true;
    return req.message;
  }

  private async identify(f: Flight, message: CheckRequest): Promise<void> {
    const verified = this.deps.tokens ? await this.deps.tokens.verify(message) : null;
    if (verified) f.token = verified.token;
    const identity = this.deps.identity;
    if (identity) f.spiffe = (await identity.identify(verified?.forIdentity ?? message)) ?? null;
  }

  /** A hit answers without building the input document; the log records the key fields instead. */
  private answerFromCache(f: Flight, active: ActivePolicy, message: CheckRequest): boolean {
    const cache = f.cache;
    f.plan = cache?.planner.planFor(active) ?? null;
    if (!cache || !f.plan) return false;
    // A token's claims are not part of any declared cache key, and its key may be rotated away: never cached.
    if (f.token) return this.bypass(f);
    if (precheckForCache(message, this.deps.config.limits) === 'bypass') return this.bypass(f);
    if (!f.plan.requestKeyable) return false; // keyed from the built input in evaluateAndStore
    const values = requestKeyValues(f.plan.declaration, message, f.spiffe);
    const key = keyFromValues(f.plan.sha256, values);
    if (key.length > (this.deps.config.cache?.maxKeyBytes ?? DEFAULT_MAX_KEY_BYTES)) return this.bypass(f);
    f.cacheKey = key;
    const result = cache.store.get(key);
    if (result === undefined) return false;
    f.recordCached = true;
    f.decision.cached = true;
    f.keyValues = values;
    this.applyResult(f, result);
    return true;
  }

  private bypass(f: Flight): false {
    f.cache?.store.bypassed();
    f.plan = null;
    return false;
  }

  private async evaluateAndStore(f: Flight, active: ActivePolicy, message: CheckRequest): Promise<void> {
    const t = this.stepStart();
    const input = await buildInputDocument(message, this.requestLimits, f.exactNumbers);
    this.stepEnd(f, 'input', t);
    if (f.spiffe) input.spiffe = f.spiffe;
    if (f.token) (input as InputDocument & { token?: TokenInput }).token = f.token;
    f.input = input;
    const cache = f.cache;
    if (cache && f.plan && f.cacheKey === undefined) {
      const key = this.inputCacheKey(f, f.plan, input);
      if (key !== undefined) f.cacheKey = key;
    }
    if (!cache || !f.plan || f.cacheKey === undefined) return this.applyResult(f, await this.evaluate(f, active, input));
    const hit = f.plan.requestKeyable ? undefined : cache.store.get(f.cacheKey);
    if (hit) {
      f.recordCached = true;
      f.decision.cached = true;
      return this.applyResult(f, hit);
    }
    const { declaration } = f.plan;
    const { result, outcome } = await cache.store.evaluate(
      f.cacheKey,
      () => this.evaluate(f, active, input),
      (r) => expiryFor(declaration, this.deps.clock.nowMs(), f.spiffe, r),
    );
    // A coalesced caller shares the one evaluation made for an identical in-flight request.
    if (outcome === 'coalesced') f.recordCached = true;
    this.applyResult(f, result);
  }

  private inputCacheKey(f: Flight, plan: CachePlan, input: InputDocument): string | undefined {
    const key = inputKey(plan.sha256, plan.declaration, input);
    if (key.length <= (this.deps.config.cache?.maxKeyBytes ?? DEFAULT_MAX_KEY_BYTES)) return key;
    f.cache?.store.bypassed();
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
    (f.timings ??= {}).eval = Number(elapsedNs);
    if (this.deps.config.decision.performanceMetrics)
      this.deps.metrics.decisionStepDuration.observe({ step: 'eval' }, Number(elapsedNs) / 1e9);
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
    if (!result.allowed && this.deps.config.decision.dryRun) decision.dryRun = true;
    // `delete` of a property that is not there still goes to the runtime: only when it is there.
    else if (decision.dryRun !== undefined) delete decision.dryRun;
  }

  private applyError(f: Flight, err: VerdictError): void {
    const { decision } = f;
    decision.allowed = false;
    delete decision.result;
    delete decision.dryRun;
    decision.reason = err.code;
    decision.httpStatus = err.httpStatus ?? this.statusFor(err.kind);
    if (err.code === 'ERR_REQUEST_PARSE' || err.code === 'ERR_REQUEST_BODY_PARSE') decision.parseError = err.message;
    f.error = err.message;
  }

  private finish(f: Flight): Decision {
    const { decision } = f;
    const log = this.deps.decisionLog;
    this.deps.metrics.countDecision(decision.allowed ? 'allow' : 'deny', decision.engine ?? 'none', decision.reason);
    if (this.countOnly) {
      if (f.trace) f.trace.step('log', () => log.count!());
      else log.count!();
    } else {
      const record = this.recordOf(f);
      if (f.trace) f.trace.step('log', () => log.emit(record, decision));
      else log.emit(record, decision);
      this.notifyObservers(f, record, decision);
    }
    f.trace?.end(decision);
    return decision;
  }

  /** The request's one DecisionRecord, from what its flight gathered. */
  private recordOf(f: Flight): DecisionRecord {
    const { decision } = f;
    const record: DecisionRecord = {
      decision_id: decision.id,
      timestamp: this.timestamp(f.startedMs),
      protocol: f.protocol,
      allowed: decision.allowed,
      http_status: decision.httpStatus,
      reason: decision.reason,
      cached: f.recordCached,
      fastpath: false,
      timings_ns: { total: Number(this.deps.clock.monotonicNs() - f.startedNs), ...f.timings },
    };
    if (decision.bundle) record.bundle = decision.bundle;
    if (decision.engine) record.engine = decision.engine;
    if (f.tenant !== undefined) record.tenant = f.tenant;
    if (f.keyValues && f.plan) {
      record.input_kind = 'cache_key';
      record.input = keyFieldsFromValues(f.plan.declaration, f.keyValues);
    } else if (f.input) {
      record.input_kind = 'full';
      record.input = f.input;
    }
    if (decision.result) record.result = decision.result;
    if (decision.result && decision.result.reasons.length > 0) record.reasons = decision.result.reasons;
    if (decision.dryRun) record.dry_run = true;
    if (f.error !== undefined) record.error = f.error;
    return record;
  }

  private notifyObservers(f: Flight, record: DecisionRecord, decision: Decision): void {
    // The kernel fast path may only repeat what user space enforced: a dry-run deny was not enforced.
    if (decision.dryRun) return;
    const observers = this.deps.observers ?? [];
    if (observers.length === 0) return;
    const context = {
      spiffe: f.spiffe,
      ...(f.input ? { input: f.input } : {}),
      ...(f.message ? { message: f.message, wireBytes: f.wireBytes ?? 0 } : {}),
    };
    for (const o of observers) o.observe(record, decision, context);
  }

  /** decision.performanceMetrics: a step's start (0 when off: no clock read on the hot path). */
  private stepStart(): bigint {
    return this.deps.config.decision.performanceMetrics ? this.deps.clock.monotonicNs() : 0n;
  }

  private stepEnd(f: Flight, step: DecisionStep, startedNs: bigint): void {
    if (!this.deps.config.decision.performanceMetrics) return;
    const ns = Number(this.deps.clock.monotonicNs() - startedNs);
    (f.timings ??= {})[step] = ns;
    this.deps.metrics.decisionStepDuration.observe({ step }, ns / 1e9);
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
