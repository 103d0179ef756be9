import { randomUUID } from 'node:crypto';
import { Counter, Gauge, type Registry } from 'prom-client';
import { checkKernelPrerequisites } from '../fastpath/kernel-prerequisites';
import type { Clock } from '../clock';
import type { KernelTelemetryConfig } from '../config/sections/kernel-telemetry';
import type { DecisionObserver } from '../decision/decision-observer';
import type { DecisionLog } from '../decisionlog/decision-record';
import { VerdictError } from '../errors';
import type { Logger } from '../telemetry/logger';
import type { Metrics } from '../telemetry/metrics';
import { AllowIndex } from './allow-index';
import { DelegatedIdentityClient } from '../identity/delegated-identity-client';
import { CgroupIdentities } from './cgroup-identities';
import { DelegatedBindings, type DelegatedStatus } from './delegated-bindings';
import { DriftDetector, type Unexplained } from './drift-detector';
import { SeriesBook, destinationLabel, type Series } from './series-book';
import { loadTelemetryAddon, telemetryObjectPath } from './telemetry-addon';
import { KernelTelemetryMaps, type TelemetryHealth } from './telemetry-maps';
import { renderKernelSeries } from './telemetry-text';

export type KernelTelemetryOffReason =
  'DISABLED_IN_CONFIG' | 'CLUSTER_MODE' | 'NOT_LINUX' | 'NOT_ROOT' | 'ADDON_MISSING' | 'CGROUP_MISSING' | 'BPF_LOAD_FAILED';

export interface KernelTelemetryStatus {
  enabled: boolean;
  reason: 'ENABLED' | KernelTelemetryOffReason;
  detail?: string;
  series?: number;
  pendingJudgements?: number;
  allowsTracked?: number;
  health?: TelemetryHealth;
  /** The last batched read: aggregates read, whether it reached the end of the map, its duration. */
  lastRead?: { entries: number; complete: boolean; durationNs: number } | null;
  /** delegatedIdentity rows: each cgroup's binding and followed PIDs, the agent streams open; null when not configured. */
  delegatedIdentity?: DelegatedStatus | null;
}

/** Kernel telemetry as the rest of verdict sees it; the disabled twin has the same shape. */
export interface KernelTelemetry {
  readonly enabled: boolean;
  /** Indexes allow decisions (drift) and verified SVID bindings; null when off. */
  readonly observer: DecisionObserver | null;
  /** Reads the kernel maps (one batch; reused within minReadIntervalMs unless forced) and judges drift. */
  refresh(force?: boolean): void;
  /** The cumulative series as /metrics shows them. */
  series(): Series[];
  /** The per-series verdict_kernel_* families in Prometheus text (appended to /metrics); reads the kernel if due. */
  metricsText(): string;
  status(): KernelTelemetryStatus;
  close(): void;
}

export interface KernelTelemetryDeps {
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  decisionLog: DecisionLog;
  /** Set in a cluster worker: drift needs every decision in one process, so telemetry stays off there. */
  workerSlot: number | null;
}

/** Starts kernel telemetry, or returns the disabled twin with one log line and a metric saying why. */
export function startKernelTelemetry(settings: KernelTelemetryConfig, deps: KernelTelemetryDeps): KernelTelemetry {
  const started = tryStart(settings, deps);
  if (started instanceof EnabledKernelTelemetry) {
    deps.metrics.kernelTelemetryEnabled.set({ reason: 'ENABLED' }, 1);
    deps.logger.info({ cgroup: settings.cgroupPath, pinPath: settings.pinPath, maxEntries: settings.maxEntries }, 'kernel telemetry on');
    return started;
  }
  const { reason, detail } = started;
  deps.metrics.kernelTelemetryEnabled.set({ reason }, 0);
  if (reason !== 'DISABLED_IN_CONFIG' && settings.required)
    throw new VerdictError('ERR_KERNEL_TELEMETRY_UNAVAILABLE', `${reason}: ${detail}`);
  const log = reason === 'DISABLED_IN_CONFIG' ? deps.logger.info.bind(deps.logger) : deps.logger.warn.bind(deps.logger);
  log({ reason, detail }, `kernel telemetry off: ${detail}`);
  return new DisabledKernelTelemetry(reason, detail);
}

function tryStart(
  s: KernelTelemetryConfig,
  deps: KernelTelemetryDeps,
): EnabledKernelTelemetry | { reason: KernelTelemetryOffReason; detail: string } {
  if (!s.enabled) return { reason: 'DISABLED_IN_CONFIG', detail: 'kernelTelemetry.enabled is false' };
  if (deps.workerSlot !== null)
    return { reason: 'CLUSTER_MODE', detail: 'kernel telemetry needs server.workers: 1 (drift must see every decision)' };
  const cgroupPath = s.cgroupPath as string;
  const loaded = checkKernelPrerequisites(loadTelemetryAddon, telemetryObjectPath(), cgroupPath);
  if ('reason' in loaded) return loaded;
  try {
    const maps = KernelTelemetryMaps.load(loaded.addon, {
      objectPath: telemetryObjectPath(),
      maxEntries: s.maxEntries,
      pinDir: s.pinPath,
      cgroupPath,
    });
    return new EnabledKernelTelemetry(s, maps, deps);
  } catch (err) {
    return { reason: 'BPF_LOAD_FAILED', detail: (err as Error).message };
  }
}

export class EnabledKernelTelemetry implements KernelTelemetry {
  readonly enabled = true;
  readonly observer: AllowIndex;
  private readonly identities: CgroupIdentities;
  private readonly book: SeriesBook;
  private readonly drift: DriftDetector;
  private readonly timer: NodeJS.Timeout | null;
  private readonly delegated: { bindings: DelegatedBindings; client: DelegatedIdentityClient } | null;
  private lastReadMs = -Infinity;
  private readThisTurn = false;
  private readErrors = 0;
  private lastRead: { entries: number; complete: boolean; durationNs: number } | null = null;

  constructor(
    private readonly settings: KernelTelemetryConfig,
    private readonly maps: KernelTelemetryMaps,
    private readonly deps: KernelTelemetryDeps,
  ) {
    this.identities = new CgroupIdentities(settings.identities, (src) =>
      deps.logger.warn(
        { sourceAddress: src },
        'kernel telemetry: two verified SPIFFE IDs from one source address; its traffic is now attributed to unknown',
      ),
    );
    this.observer = new AllowIndex(settings.drift.maxTracked, deps.clock, this.identities);
    this.book = new SeriesBook(settings.topDestinations, settings.maxSeries);
    this.drift = new DriftDetector(settings.drift, this.observer);
    // The scrape's first verdict_kernel_* metric triggers the read; metricsText() of the same scrape reuses it.
    deps.metrics.kernelTelemetryRefresh = () => this.refresh();
    this.timer = settings.pollIntervalMs > 0 ? setInterval(() => this.refresh(), settings.pollIntervalMs) : null;
    this.timer?.unref();
    this.delegated = this.startDelegated();
  }

  refresh(force = false): void {
    const nowMs = this.deps.clock.nowMs();
    if (!force && (this.readThisTurn || nowMs - this.lastReadMs < this.settings.minReadIntervalMs)) return;
    this.readThisTurn = true;
    setImmediate(() => (this.readThisTurn = false)).unref();
    this.lastReadMs = nowMs;
    try {
      this.readOnce(nowMs);
    } catch (err) {
      this.deps.metrics.kernelReads.inc({ outcome: 'error' });
      if (this.readErrors++ % 100 === 0)
        this.deps.logger.warn({ code: 'ERR_KERNEL_TELEMETRY_UNAVAILABLE', msg: (err as Error).message }, 'kernel telemetry read failed');
    }
  }

  series(): Series[] {
    return this.book.all();
  }

  metricsText(): string {
    this.refresh();
    return renderKernelSeries(this.book.all());
  }

  status(): KernelTelemetryStatus {
    return {
      enabled: true,
      reason: 'ENABLED',
      series: this.book.size,
      pendingJudgements: this.drift.pendingCount,
      allowsTracked: this.observer.size,
      health: this.maps.health(),
      lastRead: this.lastRead,
      delegatedIdentity: this.delegated?.bindings.status() ?? null,
    };
  }

  /** A diagnostic read that changes no series (tests and `status`): how many aggregates the kernel holds, up to `limit`. */
  readAll(limit: number): { count: number; complete: boolean } {
    const r = this.maps.read(limit);
    return { count: r.aggregates.length, complete: r.complete };
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.delegated?.bindings.close();
    this.delegated?.client.close();
    this.deps.metrics.kernelTelemetryRefresh = null;
    this.maps.close();
  }

  /** The Delegated Identity binding of the delegatedIdentity rows, when configured (docs/kernel-telemetry.md "Identity"). */
  private startDelegated(): { bindings: DelegatedBindings; client: DelegatedIdentityClient } | null {
    const d = this.settings.delegatedIdentity;
    const paths = this.settings.identities.filter((r) => r.delegatedIdentity).map((r) => r.cgroupPath);
    if (!d.enabled || d.socket === null || paths.length === 0) return null;
    const metrics = delegatedIdentityMetrics(this.deps.metrics.registry);
    const client = new DelegatedIdentityClient({
      socket: d.socket,
      reconnectInitialMs: d.reconnectInitialMs,
      reconnectMaxMs: d.reconnectMaxMs,
    });
    const bindings: DelegatedBindings = new DelegatedBindings(d, paths, {
      client,
      clock: this.deps.clock,
      logger: this.deps.logger,
      publish: (cgroupPath, binding) => {
        // Traffic read so far belongs to the binding it happened under: read (if due) before switching.
        this.refresh();
        this.identities.bindDelegated(cgroupPath, binding.kind === 'bound' ? binding.spiffeId : null);
        const states = bindings.status().cgroups.map((c) => c.binding.kind);
        for (const state of ['bound', 'none', 'ambiguous'] as const)
          metrics.cgroups.set({ state }, states.filter((k) => k === state).length);
      },
      streamError: (code) => metrics.streamErrors.inc({ code }),
      updateSeen: (outcome) => metrics.updates.inc({ outcome }),
    });
    for (const state of ['bound', 'none', 'ambiguous'] as const) metrics.cgroups.set({ state }, state === 'none' ? paths.length : 0);
    bindings.start();
    this.deps.logger.info(
      { socket: d.socket, cgroups: paths.length, pidsPerCgroup: d.pidsPerCgroup },
      'kernel telemetry: Delegated Identity binding on',
    );
    return { bindings, client };
  }

  private readOnce(nowMs: number): void {
    const read = this.maps.read(this.settings.readMaxEntries);
    this.deps.metrics.kernelReads.inc({ outcome: read.complete ? 'complete' : 'truncated' });
    this.deps.metrics.kernelReadDuration.set(read.durationNs / 1e9);
    this.lastRead = { entries: read.aggregates.length, complete: read.complete, durationNs: read.durationNs };
    // A cgroup created (or re-created) after start has an id the table has not seen: look the paths up again, once per read.
    if (read.aggregates.some((a) => !this.identities.has(a.cgroupId))) this.identities.resolve();
    const deltas = this.book.apply(read.aggregates, read.complete, (id) => this.identities.spiffeIdOf(id));
    if (this.settings.drift.enabled) this.report(this.drift.judge(deltas, nowMs), nowMs);
  }

  private report(unexplained: readonly Unexplained[], nowMs: number): void {
    let events = 0;
    for (const u of unexplained) {
      this.deps.metrics.kernelUnexplained.inc({ spiffe_id: u.spiffeId }, u.count);
      if (events++ >= this.settings.drift.maxEventsPerRead) {
        this.deps.metrics.kernelObservationsDropped.inc();
        continue;
      }
      this.deps.decisionLog.emit(
        {
          decision_id: randomUUID(),
          timestamp: new Date(nowMs).toISOString(),
          protocol: 'kernel',
          kind: 'observation',
          observation: {
            signal: 'unexplained_connection',
            spiffe_id: u.spiffeId,
            destination: { address: u.dstAddress, port: u.dstPort, label: destinationLabel(u.dstAddress, u.dstPort) },
            connections: u.count,
            seen_at: new Date(u.seenMs).toISOString(),
            window_ms: this.settings.drift.windowMs,
          },
          allowed: false,
          http_status: 0,
          reason: 'ERR_KERNEL_UNEXPLAINED_CONNECTION',
          cached: false,
          fastpath: false,
          timings_ns: { total: 0 },
        },
        { id: randomUUID(), allowed: false, reason: 'ERR_KERNEL_UNEXPLAINED_CONNECTION', httpStatus: 0 },
      );
    }
  }
}

class DisabledKernelTelemetry implements KernelTelemetry {
  readonly enabled = false;
  readonly observer = null;

  constructor(
    private readonly reason: KernelTelemetryOffReason,
    private readonly detail: string,
  ) {}

  refresh(): void {}
  series(): Series[] {
    return [];
  }
  metricsText(): string {
    return '';
  }
  status(): KernelTelemetryStatus {
    return { enabled: false, reason: this.reason, detail: this.detail };
  }
  close(): void {}
}

/** The Delegated Identity binding's metrics, registered once per registry (several telemetry instances may share one in tests). */
function delegatedIdentityMetrics(registry: Registry): {
  streamErrors: Counter<'code'>;
  updates: Counter<'outcome'>;
  cgroups: Gauge<'state'>;
} {
  const once = <M>(name: string, make: (config: { name: string; registers: Registry[] }) => M): M =>
    (registry.getSingleMetric(name) as M | undefined) ?? make({ name, registers: [registry] });
  return {
    streamErrors: once(
      'verdict_kernel_identity_stream_errors_total',
      (c) =>
        new Counter({
          ...c,
          help: 'Delegated Identity API streams that ended, by code (ERR_DELEGATED_IDENTITY_REFUSED: verdict is not an authorized delegate).',
          labelNames: ['code'] as const,
        }),
    ),
    updates: once(
      'verdict_kernel_identity_updates_total',
      (c) =>
        new Counter({
          ...c,
          help: 'Delegated Identity API updates, by outcome (applied; discarded: the PID was no longer the process asked about).',
          labelNames: ['outcome'] as const,
        }),
    ),
    cgroups: once(
      'verdict_kernel_identity_cgroups',
      (c) =>
        new Gauge({
          ...c,
          help: 'delegatedIdentity cgroups by binding state (bound to one SPIFFE ID, none yet, ambiguous: attributed to unknown).',
          labelNames: ['state'] as const,
        }),
    ),
  };
}
