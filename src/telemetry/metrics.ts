import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { stderrSinkState } from './log-sink';
import { BoundCounters, type BoundCounter } from './bound-counter';
import { CountingHistogram } from './counting-histogram';

type DecisionLabel = 'result' | 'engine' | 'reason';

/** One registry per verdict instance (tests run several side by side). */
export class Metrics {
  readonly registry = new Registry();

  private readonly decisionChildren = new BoundCounters<DecisionLabel>();
  /** result → engine → reason → bound child (nested maps: no key string built per Check). */
  private readonly decisionIndex = new Map<string, Map<string, Map<string, BoundCounter>>>();

  readonly decisions: Counter<DecisionLabel> = new Counter({
    name: 'verdict_decisions_total',
    help: 'Decisions made, by result, engine and reason code.',
    labelNames: ['result', 'engine', 'reason'] as const,
    registers: [this.registry],
    collect: (): void => this.decisionChildren.flush(this.decisions),
  });

  private readonly cacheRequestChildren = new BoundCounters<'outcome'>();
  private readonly cacheRequestIndex = new Map<string, BoundCounter>();

  /** Observed once per Check: counted in plain numbers (counting-histogram.ts), read by prom-client's registry. */
  readonly checkDuration = new CountingHistogram({
    name: 'verdict_check_duration_seconds',
    help: 'Server time of one Check, from decode to response.',
    labelNames: ['protocol'] as const,
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5],
    registers: [this.registry],
  });

  /** decision.performanceMetrics only (opa-envoy-plugin's enable-performance-metrics): time per pipeline step. */
  readonly decisionStepDuration = new CountingHistogram({
    name: 'verdict_decision_step_duration_seconds',
    help: 'Time of one step of a decision (identity, cache, input, eval), when decision.performanceMetrics is on.',
    labelNames: ['step'] as const,
    buckets: [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.1],
    registers: [this.registry],
  });

  readonly bundleInfo = new Gauge({
    name: 'verdict_bundle_info',
    // cluster mode: how the primary combines the workers' values
    aggregator: 'max',
    help: 'The active policy bundle (value 1), labelled by name, revision and sha256.',
    labelNames: ['name', 'revision', 'sha256', 'engine'] as const,
    registers: [this.registry],
  });

  readonly bundleLoads = new Counter({
    name: 'verdict_bundle_loads_total',
    help: 'Bundle activations attempted, by outcome and reason code.',
    labelNames: ['outcome', 'reason'] as const,
    registers: [this.registry],
  });

  readonly uncaughtExceptions = new Counter({
    name: 'verdict_uncaught_exceptions_total',
    help: 'Exceptions (or unhandled rejections) that reached the process top level; each ends the process after it is logged.',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  readonly logLinesDropped = new Counter({
    name: 'verdict_log_lines_dropped_total',
    help: 'Log lines not written to stderr: dropped while its reader was slow (8 MiB waiting), or after writing ended.',
    registers: [this.registry],
    // The sink keeps the total; a Counter has no set(), so it is reset to 0 and raised to it.
    collect: (): void => {
      this.logLinesDropped.reset();
      this.logLinesDropped.inc(stderrSinkState()?.dropped ?? 0);
    },
  });

  readonly logOutputStopped = new Gauge({
    name: 'verdict_log_output_stopped',
    // cluster mode: any process whose stderr is gone
    aggregator: 'max',
    help: '1 once a write to stderr failed (its reader has gone): later log lines are dropped and counted; else 0.',
    registers: [this.registry],
    collect: (): void => this.logOutputStopped.set(stderrSinkState()?.stopped ? 1 : 0),
  });

  readonly connectionsDropped = new Counter({
    name: 'verdict_connections_dropped_total',
    help: 'Connections closed as they were accepted because the listener held its maximum (server.transport.maxConnections, httpAuthz.maxConnections, server.reflectionTransport.maxConnections).',
    labelNames: ['listener'] as const,
    registers: [this.registry],
  });

  readonly transportRefusals = new Counter({
    name: 'verdict_transport_refusals_total',
    help: 'Calls answered by the transport instead of a decision (framing, size, encoding, deadline, content-type, the open-call bound, an unknown method), and connections closed as stalled (ERR_CONNECTION_STALLED), by listener and code.',
    labelNames: ['listener', 'code'] as const,
    registers: [this.registry],
  });

  readonly mallocTrims = new Counter({
    name: 'verdict_malloc_trims_total',
    help: 'glibc malloc_trim(0) runs (server.mallocTrimIntervalMs), by whether they returned memory to the kernel.',
    labelNames: ['released'] as const,
    registers: [this.registry],
  });

  readonly gcMarkingStarts = new Counter({
    name: 'verdict_gc_marking_starts_total',
    help: 'Times V8 was asked to start incremental marking (server.gcMarkingEveryChecks).',
    registers: [this.registry],
  });

  readonly engineRecycles = new Counter({
    name: 'verdict_engine_recycles_total',
    help: 'Policy engine instances replaced: why="memory" (memory bound reached), "trap", "timeout" (stopped at policy.timeoutMs).',
    labelNames: ['engine', 'why'] as const,
    registers: [this.registry],
  });

  readonly fastpathEnabled = new Gauge({
    name: 'verdict_fastpath_enabled',
    // cluster mode: how the primary combines the workers' values
    aggregator: 'max',
    help: 'Kernel fast path on (1) or off (0), labelled with the reason it is off (ENABLED when on).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly fastpathGeneration = new Gauge({
    name: 'verdict_fastpath_generation_bumps',
    // cluster mode: how the primary combines the workers' values
    aggregator: 'max',
    help: 'Kernel generation bumps since start (bundle swaps, trust-bundle changes).',
    registers: [this.registry],
  });

  readonly fastpathWrites = new Counter({
    name: 'verdict_fastpath_map_writes_total',
    help: 'Kernel verdict map operations, by op (put, drop, discard: made under an older generation) and outcome.',
    labelNames: ['op', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly fastpathSkipped = new Counter({
    name: 'verdict_fastpath_skipped_total',
    help: 'Decisions the hotness tracker did not count, by reason.',
    labelNames: ['why'] as const,
    registers: [this.registry],
  });

  // Decision cache (src/cache/).
  readonly cacheRequests: Counter<'outcome'> = new Counter({
    name: 'verdict_cache_requests_total',
    help: 'Decision-cache lookups by outcome: hit, miss (evaluated), coalesced (joined an identical in-flight miss), bypass.',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
    collect: (): void => this.cacheRequestChildren.flush(this.cacheRequests),
  });

  readonly cacheEvictions = new Counter({
    name: 'verdict_cache_evictions_total',
    help: 'Decision-cache entries removed, by why: size (entry or byte bound), expired, invalidated (bundle or trust-bundle change).',
    labelNames: ['why'] as const,
    registers: [this.registry],
  });

  /** Set by the fast path: reads the kernel's per-CPU counters when /metrics is scraped. */
  fastpathKernelSource: (() => Record<string, number>) | null = null;

  readonly fastpathKernel = new Gauge({
    name: 'verdict_fastpath_kernel_lookups',
    // cluster mode: how the primary combines the workers' values
    aggregator: 'max',
    help: 'Kernel verdict-map lookups at connect(), by outcome (hitAllow, hitDeny, miss, stale), since load.',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
    collect: () => {
      const read = this.fastpathKernelSource;
      if (!read) return;
      for (const [outcome, value] of Object.entries(read())) this.fastpathKernel.set({ outcome }, value);
    },
  });

  /** Set by the decision cache so its size is sampled at scrape time, not per request. */
  cacheSize: (() => { entries: number; bytes: number }) | null = null;

  readonly cacheEntries = new Gauge({
    name: 'verdict_cache_entries',
    help: 'Decision-cache entries held, and their estimated bytes (label unit).',
    labelNames: ['unit'] as const,
    registers: [this.registry],
    collect: () => {
      const size = this.cacheSize?.();
      if (!size) return;
      this.cacheEntries.set({ unit: 'entries' }, size.entries);
      this.cacheEntries.set({ unit: 'bytes' }, size.bytes);
    },
  });

  readonly cacheLint = new Gauge({
    name: 'verdict_cache_lint_findings',
    help: 'Input paths the active bundle reads but its declared cache key omits (-1: could not analyse). Non-zero is a wrong-answer risk.',
    labelNames: ['bundle', 'sha256'] as const,
    registers: [this.registry],
  });

  // Decision logs (src/decisionlog/).
  private readonly decisionLogEventChildren = new BoundCounters<'stage' | 'sink'>();
  private readonly decisionLogEventIndex = new Map<string, BoundCounter>();

  readonly decisionLogEvents: Counter<'stage' | 'sink'> = new Counter({
    name: 'verdict_decisionlog_events_total',
    help: 'Decision-log events by stage: emitted (by a Check), spooled (written to the spool), delivered (acknowledged by a sink).',
    labelNames: ['stage', 'sink'] as const,
    registers: [this.registry],
    collect: (): void => this.decisionLogEventChildren.flush(this.decisionLogEvents),
  });

  readonly decisionLogLost = new Counter({
    name: 'verdict_decisionlog_lost_total',
    help: 'Decision-log events lost, by why (queue_full, spool_full, spool_error; read from the spool: torn, too_long, corrupt; sink_refused: a sink refused the event on its own). Never silent: also logged.',
    labelNames: ['why'] as const,
    registers: [this.registry],
  });

  readonly decisionLogSpoolFaults = new Counter({
    name: 'verdict_decisionlog_spool_faults_total',
    help: 'Spool failures verdict served on through (a shipper turn, a segment that cannot be read or deleted, …), by why; each is logged with ERR_DECISIONLOG_SPOOL.',
    labelNames: ['why'] as const,
    registers: [this.registry],
  });

  readonly decisionLogSinkErrors = new Counter({
    name: 'verdict_decisionlog_sink_errors_total',
    help: 'Failed deliveries to a sink, by why (timeout, dns, tls, network, redirect, http_4xx, http_5xx: retried with backoff; refused: sent again in halves; error: any other sink failure).',
    labelNames: ['sink', 'why'] as const,
    registers: [this.registry],
  });

  readonly decisionLogBacklog = new Gauge({
    name: 'verdict_decisionlog_backlog_bytes',
    help: 'Spooled bytes not yet delivered, per sink.',
    labelNames: ['sink'] as const,
    registers: [this.registry],
  });

  /** Set by the identity wiring: readiness and verdict's own SVID expiry, sampled at scrape time. */
  identitySource: (() => { ready: boolean; ownSVIDExpiresAtMs: number | null }) | null = null;

  readonly identityReady = new Gauge({
    name: 'verdict_identity_ready',
    // cluster mode: how the primary combines the workers' values
    aggregator: 'min',
    help: 'SPIFFE trust bundles (and own SVID, when used) present and fresh: 1, else 0. Absent when identity is off.',
    registers: [this.registry],
    collect: () => {
      const s = this.identitySource?.();
      if (s) this.identityReady.set(s.ready ? 1 : 0);
    },
  });

  readonly ownSVIDExpiry = new Gauge({
    name: 'verdict_own_svid_expiry_seconds',
    // cluster mode: how the primary combines the workers' values
    aggregator: 'min',
    help: "Seconds until verdict's own X.509-SVID (from the Workload API) expires.",
    registers: [this.registry],
    collect: () => {
      const at = this.identitySource?.().ownSVIDExpiresAtMs;
      if (at !== null && at !== undefined) this.ownSVIDExpiry.set((at - Date.now()) / 1000);
    },
  });

  readonly trustBundleUpdates = new Counter({
    name: 'verdict_trust_bundle_updates_total',
    help: 'Trust-bundle sets received from the Workload API (each invalidates the decision cache and the kernel generation).',
    registers: [this.registry],
  });

  // Kernel telemetry (src/kerneltelemetry/); its per-series verdict_kernel_* collectors register themselves.
  /** Set by kernel telemetry: one batched kernel read, run by the first verdict_kernel_* metric of a scrape. */
  kernelTelemetryRefresh: (() => void) | null = null;

  readonly kernelTelemetryEnabled = new Gauge({
    name: 'verdict_kernel_telemetry_enabled',
    // cluster mode: how the primary combines the workers' values
    aggregator: 'max',
    help: 'Kernel telemetry on (1) or off (0), labelled with the reason it is off (ENABLED when on).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
    // Runs before the counters below are serialised, so a scrape shows the read it triggered.
    collect: () => this.kernelTelemetryRefresh?.(),
  });

  readonly kernelUnexplained = new Counter({
    name: 'verdict_kernel_unexplained_connections_total',
    help: 'Connections the kernel saw established with no allow decision from verdict for that identity and destination within the window.',
    labelNames: ['spiffe_id'] as const,
    registers: [this.registry],
  });

  readonly kernelReads = new Counter({
    name: 'verdict_kernel_reads_total',
    help: 'Batched reads of the kernel telemetry maps, by outcome (complete, truncated: stopped at readMaxEntries, error).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly kernelReadDuration = new Gauge({
    name: 'verdict_kernel_read_duration_seconds',
    help: 'Duration of the last batched read of the kernel telemetry maps (decode included).',
    registers: [this.registry],
  });

  readonly kernelObservationsDropped = new Counter({
    name: 'verdict_kernel_observation_events_dropped_total',
    help: 'Unexplained-connection observations counted but not written to the decision log (over maxEventsPerRead).',
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean; eventLoopResolutionMs?: number } = {}) {
    if (options.defaultMetrics ?? true)
      collectDefaultMetrics({
        register: this.registry,
        prefix: 'verdict_',
        eventLoopMonitoringPrecision: options.eventLoopResolutionMs ?? 10,
      });
  }

  /** verdict_decisions_total +1 on the hot path (see BoundCounters). */
  countDecision(result: string, engine: string, reason: string): void {
    let byEngine = this.decisionIndex.get(result);
    if (!byEngine) this.decisionIndex.set(result, (byEngine = new Map()));
    let byReason = byEngine.get(engine);
    if (!byReason) byEngine.set(engine, (byReason = new Map()));
    let child = byReason.get(reason);
    if (!child) byReason.set(reason, (child = this.decisionChildren.bind({ result, engine, reason })));
    child.inc();
  }

  /** A bound verdict_decisionlog_events_total child (emitted / spooled run once per Check). */
  decisionLogEventCounter(stage: 'emitted' | 'spooled', sink: string): BoundCounter {
    const key = `${stage}\u0000${sink}`;
    let child = this.decisionLogEventIndex.get(key);
    if (!child) this.decisionLogEventIndex.set(key, (child = this.decisionLogEventChildren.bind({ stage, sink })));
    return child;
  }

  /** A bound verdict_cache_requests_total child for one outcome. */
  cacheRequestCounter(outcome: 'hit' | 'miss' | 'coalesced' | 'bypass'): BoundCounter {
    // One child per outcome, shared by every cache (tenants, rebuilt caches): the list stays bounded.
    let child = this.cacheRequestIndex.get(outcome);
    if (!child) this.cacheRequestIndex.set(outcome, (child = this.cacheRequestChildren.bind({ outcome })));
    return child;
  }
}
