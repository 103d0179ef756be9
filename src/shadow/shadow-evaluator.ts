import type { Clock } from '../clock';
import type { BundleRef, Decision, ReasonCode } from '../decision/decision';
import type { DecisionContext, DecisionObserver } from '../decision/decision-observer';
import { resultToJSON } from '../decisionlog/decision-event';
import type { DecisionLog, DecisionRecord } from '../decisionlog/decision-record';
import { VerdictError, toVerdictError } from '../errors';
import type { PolicyResult } from '../policy/policy-result';
import type { ActivePolicy } from '../policy/policy-store';
import { buildInputDocument, type InputDocument, type RequestLimits } from '../request/input-document';
import { CPUBudget } from './cpu-budget';
import type { ShadowMetrics } from './shadow-metrics';

/** Evaluations past the deadline after which a candidate bundle is benched. */
const BENCH_AFTER = 3;

export type ShadowDirection = 'allow_to_deny' | 'deny_to_allow' | 'result_changed';

export interface ShadowEvaluatorOptions {
  /** The candidate as it is now (null until its first bundle is active). */
  candidate: () => ActivePolicy | null;
  sampleRate: number;
  maxQueue: number;
  /** Bound on the waiting requests' wire bytes (DecisionContext.wireBytes); past it samples are dropped. */
  maxQueueBytes: number;
  maxCPUShare: number;
  timeoutMs: number;
  /** Statuses as the pipeline would give them, so a candidate's result compares like for like. */
  denyStatus: number;
  errorStatus: number;
  limits: RequestLimits;
  decisionLog: DecisionLog;
  metrics: ShadowMetrics;
  clock: Clock;
  random?: () => number;
}

interface ShadowJob {
  record: DecisionRecord;
  decision: Decision;
  context: DecisionContext;
  bytes: number;
}

/** One side of a comparison, as it goes into the shadow event. */
interface Outcome {
  bundle?: BundleRef;
  allowed: boolean;
  reason: ReasonCode;
  http_status: number;
  result?: Record<string, unknown>;
}

/**
 * Re-decides a sample of finished requests with the candidate bundle, after their answers are sent: observe()
 * only enqueues (bounded; a full queue drops and counts), and the queue drains one request per event-loop
 * turn (setImmediate: behind the response writes and incoming I/O), within a CPU budget. A disagreement is
 * logged as a decision-log event of kind `shadow` carrying both outcomes, and counted by direction.
 */
export class ShadowEvaluator implements DecisionObserver {
  private readonly queue: (ShadowJob | undefined)[] = [];
  private head = 0;
  /** Wire bytes of the waiting jobs: each holds its decoded request and input, so count alone is no bound. */
  private queuedBytes = 0;
  private running = false;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private idleWaiters: (() => void)[] = [];
  private readonly budget: CPUBudget;
  private readonly random: () => number;
  /** Per candidate, its evaluations that ran past the policy deadline; at BENCH_AFTER it is not evaluated again (see compare). */
  private readonly overruns = new WeakMap<ActivePolicy, number>();

  constructor(private readonly options: ShadowEvaluatorOptions) {
    this.budget = new CPUBudget(options.maxCPUShare, () => options.clock.monotonicNs());
    this.random = options.random ?? Math.random;
    options.metrics.queueSize = () => this.pending;
  }

  get pending(): number {
    return this.queue.length - this.head;
  }

  observe(record: DecisionRecord, decision: Decision, context?: DecisionContext): void {
    // Only requests that reached the policy have an input to re-decide; refusals before it are the same for any bundle.
    if (this.closed || context === undefined || record.input === undefined || record.kind !== undefined) return;
    if (this.options.sampleRate < 1 && this.random() >= this.options.sampleRate) return;
    if (this.options.candidate() === null) return this.options.metrics.evaluations.inc({ outcome: 'no_candidate' });
    const bytes = context.wireBytes ?? 0;
    if (this.pending >= this.options.maxQueue || this.queuedBytes + bytes > this.options.maxQueueBytes)
      return this.options.metrics.evaluations.inc({ outcome: 'dropped' });
    this.queuedBytes += bytes;
    this.queue.push({ record, decision, context, bytes });
    this.schedule();
  }

  /** Resolves once the queue is empty (tests, shutdown). */
  idle(): Promise<void> {
    if (!this.running && this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.queue.length = 0;
    this.head = 0;
    this.queuedBytes = 0;
    this.running = false;
    this.wakeIdle();
  }

  private schedule(): void {
    if (this.running) return;
    this.running = true;
    setImmediate(() => void this.step());
  }

  private async step(): Promise<void> {
    this.timer = null;
    if (this.closed) return;
    const waitMs = this.budget.waitMs();
    if (waitMs > 0) {
      this.timer = setTimeout(() => void this.step(), waitMs);
      return;
    }
    const job = this.take();
    if (job) {
      const startedNs = this.options.clock.monotonicNs();
      await this.compare(job).catch(() => this.options.metrics.evaluations.inc({ outcome: 'error' }));
      this.budget.spend(Number(this.options.clock.monotonicNs() - startedNs));
    }
    if (this.pending > 0 && !this.closed) {
      setImmediate(() => void this.step());
      return;
    }
    this.running = false;
    this.wakeIdle();
  }

  private take(): ShadowJob | undefined {
    const job = this.queue[this.head];
    this.queue[this.head++] = undefined;
    if (job) this.queuedBytes -= job.bytes;
    // Compact once the consumed prefix dominates, so the array never grows past the bound for long.
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    return job;
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private async compare(job: ShadowJob): Promise<void> {
    const candidate = this.options.candidate();
    if (candidate === null) return this.options.metrics.evaluations.inc({ outcome: 'no_candidate' });
    const overruns = this.overruns.get(candidate) ?? 0;
    if (overruns >= BENCH_AFTER) return this.options.metrics.evaluations.inc({ outcome: 'benched' });
    const input = job.context.input ?? (await this.rebuildInput(job.context));
    const startedNs = this.options.clock.monotonicNs();
    const after = await this.decide(candidate, input);
    const evalNs = Number(this.options.clock.monotonicNs() - startedNs);
    // A synchronous engine (OPA, Cedar, a custom engine's wait) holds the event loop for as long as it runs:
    // the CPU budget bounds the average, not one call. A candidate whose evaluations ran past a deadline (its
    // own timeout, or any outcome that took longer than policy.timeoutMs) BENCH_AFTER times is benched until
    // the next candidate bundle, so it stalls the active answers at most that often per bundle; one pause of
    // the machine (a full GC, a busy core) is not enough to end a rollout's comparisons.
    if (after.reason === 'ERR_POLICY_TIMEOUT' || evalNs / 1e6 > this.options.timeoutMs) this.overruns.set(candidate, overruns + 1);
    const before = activeOutcome(job.decision);
    const direction = directionOf(before, after);
    if (direction === null) return this.options.metrics.evaluations.inc({ outcome: after.reason.startsWith('ERR_') ? 'error' : 'agree' });
    this.options.metrics.evaluations.inc({ outcome: after.reason.startsWith('ERR_') ? 'error' : 'disagree' });
    this.options.metrics.disagreements.inc({ direction });
    this.emit(job, input, before, after, direction, evalNs, candidate);
  }

  /** A cache hit built no input document: build it as the pipeline would have (same message, same identity). */
  private async rebuildInput(context: DecisionContext): Promise<InputDocument> {
    if (!context.message) throw new VerdictError('ERR_INTERNAL', 'shadow job has neither input nor request');
    const input = await buildInputDocument(context.message, this.options.limits);
    if (context.spiffe) input.spiffe = context.spiffe;
    return input;
  }

  /** The candidate's outcome; a failure to decide is a deny with its code (fail closed, as the pipeline would). */
  private async decide(candidate: ActivePolicy, input: InputDocument): Promise<Outcome> {
    const { bundle } = candidate;
    const ref = { name: bundle.name, revision: bundle.revision, sha256: bundle.sha256 };
    try {
      const result = await boundedEvaluation(candidate, input, this.options.timeoutMs, this.options.clock);
      const status = result.allowed ? 200 : (result.httpStatus ?? this.options.denyStatus);
      return {
        bundle: ref,
        allowed: result.allowed,
        reason: result.allowed ? 'ALLOWED' : 'DENIED_BY_POLICY',
        http_status: status,
        result: resultToJSON(result),
      };
    } catch (err) {
      const e = toVerdictError(err, 'ERR_POLICY_EVAL');
      return { bundle: ref, allowed: false, reason: e.code, http_status: e.httpStatus ?? this.options.errorStatus };
    }
  }

  private emit(
    job: ShadowJob,
    input: InputDocument,
    before: Outcome,
    after: Outcome,
    direction: ShadowDirection,
    evalNs: number,
    candidate: ActivePolicy,
  ): void {
    const { record } = job;
    const shadowRecord: DecisionRecord = {
      decision_id: record.decision_id,
      timestamp: new Date(this.options.clock.nowMs()).toISOString(),
      protocol: record.protocol,
      ...(after.bundle ? { bundle: after.bundle } : {}),
      engine: candidate.engine.kind,
      input,
      input_kind: 'full',
      allowed: after.allowed,
      http_status: after.http_status,
      reason: after.reason,
      cached: false,
      fastpath: false,
      timings_ns: { total: evalNs, eval: evalNs },
      kind: 'shadow',
      shadow: { direction, decided_at: record.timestamp, active: before, candidate: after },
    };
    const decision: Decision = { id: record.decision_id, allowed: after.allowed, reason: after.reason, httpStatus: after.http_status };
    this.options.decisionLog.emit(shadowRecord, decision);
  }
}

function activeOutcome(d: Decision): Outcome {
  return {
    ...(d.bundle ? { bundle: d.bundle } : {}),
    allowed: d.allowed,
    reason: d.reason,
    http_status: d.httpStatus,
    ...(d.result ? { result: resultToJSON(d.result) } : {}),
  };
}

/** Allow/deny flips first; otherwise any difference in what Envoy would get (status, headers, body, code). */
export function directionOf(before: Outcome, after: Outcome): ShadowDirection | null {
  if (before.allowed !== after.allowed) return before.allowed ? 'allow_to_deny' : 'deny_to_allow';
  return answerOf(before) === answerOf(after) ? null : 'result_changed';
}

/** What reaches Envoy: the result without its explanation (`reasons` name rules, which differ between bundles). */
function answerOf(o: Outcome): string {
  if (o.result === undefined) return `${o.http_status} ${o.reason}`;
  const { reasons: _reasons, ...answer } = o.result;
  return `${o.http_status} ${JSON.stringify(answer)}`;
}

/** Sync engines are timed after the fact; an async one races a timer (as the decision pipeline does). */
async function boundedEvaluation(candidate: ActivePolicy, input: InputDocument, timeoutMs: number, clock: Clock): Promise<PolicyResult> {
  const startedNs = clock.monotonicNs();
  const outcome = candidate.engine.evaluate(input);
  const result = outcome instanceof Promise ? await raceTimer(outcome, timeoutMs) : outcome;
  if (Number(clock.monotonicNs() - startedNs) / 1e6 > timeoutMs)
    throw new VerdictError('ERR_POLICY_TIMEOUT', `candidate took over ${timeoutMs} ms`);
  return result;
}

function raceTimer<T>(work: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new VerdictError('ERR_POLICY_TIMEOUT', `candidate exceeded ${ms} ms`)), ms);
    work.then(
      (v) => (clearTimeout(timer), resolve(v)),
      (e: unknown) => (clearTimeout(timer), reject(e)),
    );
  });
}
