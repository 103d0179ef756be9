import type { Clock } from '../clock';
import type { Config } from '../config/schema';
import type { DecisionObserver } from '../decision/decision-observer';
import { VerdictError } from '../errors';
import type { ActivePolicy } from '../policy/policy-store';
import type { Logger } from '../telemetry/logger';
import type { Metrics } from '../telemetry/metrics';
import { kernelEligibility } from './kernel-eligibility';
import { dumpEntries, readKernelStatus, type DumpedEntry, type KernelStatus } from './fastpath-status';
import { HotnessTracker, type EligibleBundle } from './hotness-tracker';
import { KernelVerdictMap } from './kernel-verdict-map';
import { KernelWriter } from './kernel-writer';
import { checkKernelPrerequisites } from './kernel-prerequisites';
import { bpfObjectPath, loadAddon } from './native-addon';

export type FastpathOffReason = 'DISABLED_IN_CONFIG' | 'NOT_LINUX' | 'NOT_ROOT' | 'ADDON_MISSING' | 'CGROUP_MISSING' | 'BPF_LOAD_FAILED';

export interface FastpathStatus extends Partial<KernelStatus> {
  enabled: boolean;
  /** 'ENABLED', or why the fast path is off. */
  reason: 'ENABLED' | FastpathOffReason;
  detail?: string;
  tracked?: number;
}

/** The kernel fast path as the rest of verdict sees it; the disabled twin has the same shape. */
export interface Fastpath {
  readonly enabled: boolean;
  /** The hotness tracker to pass to the pipeline; null when off. */
  readonly observer: DecisionObserver | null;
  /** A new bundle is active: retire every kernel entry (one generation write) and re-read eligibility. */
  onPolicySwap(active: ActivePolicy): void;
  /** Trust bundle or anything else the verdicts depended on changed: retire every kernel entry. */
  bumpGeneration(why: string): void;
  /** Writes whatever is queued now (normally done once per event-loop turn). */
  flush(): void;
  status(): FastpathStatus;
  /** The kernel map's entries (empty when off). */
  dump(limit: number): DumpedEntry[];
  close(): void;
}

export interface FastpathDeps {
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
}

type Settings = Config['fastpath'];

/** Starts the kernel path, or returns the disabled twin with one log line and a metric saying why. */
export function startFastpath(settings: Settings, deps: FastpathDeps): Fastpath {
  const started = tryStart(settings, deps);
  if (started instanceof EnabledFastpath) {
    deps.metrics.fastpathEnabled.set({ reason: 'ENABLED' }, 1);
    deps.logger.info({ cgroup: settings.cgroupPath, pinPath: settings.pinPath, maxEntries: settings.maxEntries }, 'fast path on');
    return started;
  }
  const { reason, detail } = started;
  deps.metrics.fastpathEnabled.set({ reason }, 0);
  if (reason !== 'DISABLED_IN_CONFIG' && settings.required) {
    throw new VerdictError('ERR_FASTPATH_UNAVAILABLE', `${reason}: ${detail}`);
  }
  const log = reason === 'DISABLED_IN_CONFIG' ? deps.logger.info.bind(deps.logger) : deps.logger.warn.bind(deps.logger);
  log({ reason, detail }, `fast path off: ${detail}`);
  return new DisabledFastpath(reason, detail);
}

function tryStart(s: Settings, deps: FastpathDeps): EnabledFastpath | { reason: FastpathOffReason; detail: string } {
  if (!s.enabled) return { reason: 'DISABLED_IN_CONFIG', detail: 'fastpath.enabled is false' };
  const cgroupPath = s.cgroupPath as string;
  const loaded = checkKernelPrerequisites(loadAddon, bpfObjectPath(), cgroupPath);
  if ('reason' in loaded) return loaded;
  try {
    const map = KernelVerdictMap.load(loaded.addon, {
      objectPath: bpfObjectPath(),
      maxEntries: s.maxEntries,
      pinDir: s.pinPath,
      cgroupPath,
    });
    return new EnabledFastpath(s, map, deps);
  } catch (err) {
    return { reason: 'BPF_LOAD_FAILED', detail: (err as Error).message };
  }
}

class EnabledFastpath implements Fastpath {
  readonly enabled = true;
  readonly observer: HotnessTracker;
  private readonly writer: KernelWriter;

  constructor(
    private readonly settings: Settings,
    private readonly map: KernelVerdictMap,
    private readonly deps: FastpathDeps,
  ) {
    // New at every start (wall-clock µs), so nothing a previous run wrote can match.
    const initial = BigInt(deps.clock.nowMs()) * 1000n;
    this.writer = new KernelWriter(map, settings.batchSize, deps.metrics, (err) => this.onWriteError(err), initial);
    this.observer = new HotnessTracker(settings, this.writer, deps.clock, (why) => deps.metrics.fastpathSkipped.inc({ why }));
    deps.metrics.fastpathKernelSource = () => ({ ...map.counters() });
  }

  onPolicySwap(active: ActivePolicy): void {
    const eligibility = kernelEligibility(active.bundle.manifest);
    const bundle: EligibleBundle = { sha256: active.bundle.sha256, declaration: eligibility.eligible ? eligibility.declaration : null };
    this.bumpGeneration('bundle swap');
    this.observer.setBundle(bundle);
    if (!eligibility.eligible)
      this.deps.logger.info({ why: eligibility.why, bundle: active.bundle.name }, 'fast path: bundle verdicts are not kernel-eligible');
  }

  bumpGeneration(why: string): void {
    try {
      const generation = this.writer.bumpGeneration();
      this.deps.metrics.fastpathGeneration.inc();
      this.deps.logger.debug({ why, generation: generation.toString() }, 'fast path generation bumped');
    } catch (err) {
      // Cannot retire the old entries by generation: take the programs off so nothing stale is obeyed.
      this.deps.logger.error(
        { code: 'ERR_FASTPATH_WRITE', detail: (err as Error).message },
        'fast path generation write failed; closing the fast path',
      );
      this.close();
    }
  }

  flush(): void {
    this.writer.flush();
  }

  status(): FastpathStatus {
    return { enabled: true, reason: 'ENABLED', tracked: this.observer.size, ...readKernelStatus(this.map, this.settings.maxEntries) };
  }

  dump(limit: number): DumpedEntry[] {
    return dumpEntries(this.map, limit);
  }

  close(): void {
    this.writer.close();
    this.deps.metrics.fastpathKernelSource = null;
    this.map.close();
  }

  private onWriteError(err: unknown): void {
    this.deps.logger.warn({ code: 'ERR_FASTPATH_WRITE', detail: (err as Error).message }, 'fast path map write failed');
  }
}

class DisabledFastpath implements Fastpath {
  readonly enabled = false;
  readonly observer = null;

  constructor(
    private readonly reason: FastpathOffReason,
    private readonly detail: string,
  ) {}

  onPolicySwap(): void {}
  bumpGeneration(): void {}
  flush(): void {}
  status(): FastpathStatus {
    return { enabled: false, reason: this.reason, detail: this.detail };
  }
  dump(): DumpedEntry[] {
    return [];
  }
  close(): void {}
}
