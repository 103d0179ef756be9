import { VerdictError } from '../errors';
import { callNative } from '../native-module';
import type { KernelTelemetryAddon, TelemetryHandle } from './telemetry-addon';
import { HEALTH_NAMES, KT_KEY_LAYOUT, STATS_WORDS, decodeAggregateKey, statsFromWords, type Aggregate } from './telemetry-layout';

export interface TelemetryRead {
  aggregates: Aggregate[];
  /** false when the read stopped at its entry cap before the end of the map. */
  complete: boolean;
  durationNs: number;
}

export type TelemetryHealth = Record<(typeof HEALTH_NAMES)[number], number>;

/**
 * The kernel side as user space sees it: one batched read of every (cgroup, destination) aggregate, CPUs
 * summed by the addon, decoded here. Loading attaches the programs when a cgroup is given.
 */
export class KernelTelemetryMaps {
  private constructor(
    private readonly addon: KernelTelemetryAddon,
    private handle: TelemetryHandle | null,
  ) {}

  static load(
    addon: KernelTelemetryAddon,
    o: { objectPath: string; maxEntries: number; pinDir: string | null; cgroupPath: string | null },
  ): KernelTelemetryMaps {
    const maps = new KernelTelemetryMaps(
      addon,
      callNative('ERR_KERNEL_TELEMETRY_UNAVAILABLE', () => addon.ktLoad(o.objectPath, o.maxEntries, o.pinDir)),
    );
    if (o.cgroupPath === null) return maps;
    try {
      maps.attach(o.cgroupPath);
    } catch (err) {
      maps.close();
      throw err;
    }
    return maps;
  }

  /** Read-only view of a running verdict's pinned maps (conn_stats of `maxEntries` slots); any other layout is refused. */
  static openPinned(addon: KernelTelemetryAddon, pinDir: string, maxEntries: number): KernelTelemetryMaps {
    return new KernelTelemetryMaps(
      addon,
      callNative('ERR_KERNEL_TELEMETRY_UNAVAILABLE', () => addon.ktOpenPinned(pinDir, maxEntries)),
    );
  }

  attach(cgroupPath: string): void {
    const h = this.open();
    callNative('ERR_KERNEL_TELEMETRY_UNAVAILABLE', () => this.addon.ktAttach(h, cgroupPath));
  }

  detach(): void {
    const h = this.open();
    callNative('ERR_KERNEL_TELEMETRY_UNAVAILABLE', () => this.addon.ktDetach(h));
  }

  /** At most `limit` aggregates in one call into the addon (BPF_MAP_LOOKUP_BATCH chunks of 1024). */
  read(limit: number): TelemetryRead {
    const h = this.open();
    const t0 = process.hrtime.bigint();
    const raw = callNative('ERR_KERNEL_TELEMETRY_UNAVAILABLE', () => this.addon.ktRead(h, limit));
    const aggregates: Aggregate[] = new Array<Aggregate>(raw.count);
    for (let i = 0; i < raw.count; i++)
      aggregates[i] = { ...decodeAggregateKey(raw.keys, i * KT_KEY_LAYOUT.size), stats: statsFromWords(raw.values, i * STATS_WORDS) };
    return { aggregates, complete: raw.complete, durationNs: Number(process.hrtime.bigint() - t0) };
  }

  health(): TelemetryHealth {
    const h = this.open();
    const raw = callNative('ERR_KERNEL_TELEMETRY_UNAVAILABLE', () => this.addon.ktHealth(h));
    const out = {} as TelemetryHealth;
    HEALTH_NAMES.forEach((name, i) => (out[name] = Number(raw[i] ?? 0n)));
    return out;
  }

  /** Per-program run count and time (counted only while kernel.bpf_stats_enabled=1). */
  programStats(): { name: string; runCount: number; runTimeNs: number }[] {
    const h = this.open();
    return this.addon.ktProgramStats(h).map((p) => ({ name: p.name, runCount: Number(p.runCount), runTimeNs: Number(p.runTimeNs) }));
  }

  /** Detaches the programs, removes this process's pins, drops the maps. */
  close(): void {
    if (this.handle) this.addon.ktClose(this.handle);
    this.handle = null;
  }

  private open(): TelemetryHandle {
    if (!this.handle) throw new VerdictError('ERR_KERNEL_TELEMETRY_UNAVAILABLE', 'kernel telemetry maps are closed');
    return this.handle;
  }
}
