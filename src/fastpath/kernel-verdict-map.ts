import { VerdictError } from '../errors';
import { callNative } from '../native-module';
import type { AttachedProgram, FastpathAddon, NativeHandle } from './native-addon';
import {
  COUNTER_NAMES,
  KEY_LAYOUT,
  VALUE_LAYOUT,
  decodeKey,
  decodeValue,
  writeKey,
  writeValue,
  type CounterName,
  type KernelVerdict,
  type L4Tuple,
} from './map-layout';

export interface KernelEntry extends L4Tuple, KernelVerdict {}

export type KernelCounters = Record<CounterName, number>;

/** Attached to a cgroup when `cgroupPath` is given; maps pinned under `pinDir` when it is. */
export interface KernelVerdictMapOptions {
  objectPath: string;
  maxEntries: number;
  pinDir: string | null;
  cgroupPath: string | null;
}

/**
 * The kernel side as user space sees it: batched writes into the LRU verdict map, the generation slot,
 * the per-CPU counters. Bytes are encoded here (map-layout.ts); the addon only moves them.
 */
export class KernelVerdictMap {
  private keyScratch = Buffer.alloc(KEY_LAYOUT.size * 64);
  private valueScratch = Buffer.alloc(VALUE_LAYOUT.size * 64);

  private constructor(
    private readonly addon: FastpathAddon,
    private handle: NativeHandle | null,
    private cgroup: string | null,
  ) {}

  get cgroupPath(): string | null {
    return this.cgroup;
  }

  static load(addon: FastpathAddon, options: KernelVerdictMapOptions): KernelVerdictMap {
    const handle = callNative('ERR_FASTPATH_UNAVAILABLE', () => addon.load(options.objectPath, options.maxEntries, options.pinDir));
    const map = new KernelVerdictMap(addon, handle, null);
    if (options.cgroupPath !== null) {
      try {
        map.attach(options.cgroupPath);
      } catch (err) {
        map.close();
        throw err;
      }
    }
    return map;
  }

  /**
   * Read-only view of a running verdict's pinned maps (for `verdict fastpath status`), whose verdict map has
   * `maxEntries` slots; pins of any other layout are refused (ERR_FASTPATH_UNAVAILABLE, EBPF_LAYOUT).
   */
  static openPinned(addon: FastpathAddon, pinDir: string, cgroupPath: string | null, maxEntries: number): KernelVerdictMap {
    return new KernelVerdictMap(
      addon,
      callNative('ERR_FASTPATH_UNAVAILABLE', () => addon.openPinned(pinDir, maxEntries)),
      cgroupPath,
    );
  }

  /** CLOCK_MONOTONIC in ns: the clock the kernel compares expires_ns with. */
  kernelNowNs(): bigint {
    return this.addon.monotonicNs();
  }

  /** Writes entries in one batch call; returns how many the kernel took. */
  write(entries: readonly KernelEntry[]): number {
    const handle = this.open();
    this.reserve(entries.length);
    let n = 0;
    for (const e of entries) {
      if (!writeKey(e, this.keyScratch, n * KEY_LAYOUT.size)) continue;
      writeValue(e, this.valueScratch, n * VALUE_LAYOUT.size);
      n++;
    }
    return callNative('ERR_FASTPATH_WRITE', () => this.addon.update(handle, this.keyScratch, this.valueScratch, n));
  }

  remove(tuples: readonly L4Tuple[]): number {
    const handle = this.open();
    this.reserve(tuples.length);
    let n = 0;
    for (const t of tuples) if (writeKey(t, this.keyScratch, n * KEY_LAYOUT.size)) n++;
    return callNative('ERR_FASTPATH_WRITE', () => this.addon.remove(handle, this.keyScratch, n));
  }

  setGeneration(generation: bigint): void {
    const handle = this.open();
    callNative('ERR_FASTPATH_WRITE', () => this.addon.setGeneration(handle, generation));
  }

  generation(): bigint {
    const handle = this.open();
    return callNative('ERR_FASTPATH_UNAVAILABLE', () => this.addon.getGeneration(handle));
  }

  counters(): KernelCounters {
    const handle = this.open();
    const raw = callNative('ERR_FASTPATH_UNAVAILABLE', () => this.addon.counters(handle));
    const out = {} as KernelCounters;
    COUNTER_NAMES.forEach((name, i) => (out[name] = Number(raw[i] ?? 0n)));
    return out;
  }

  /** Up to `limit` entries as the kernel holds them (stale ones included: the reader judges). */
  entries(limit: number): KernelEntry[] {
    const handle = this.open();
    const { keys, values, count } = callNative('ERR_FASTPATH_UNAVAILABLE', () => this.addon.dump(handle, limit));
    const out: KernelEntry[] = [];
    for (let i = 0; i < count; i++) out.push({ ...decodeKey(keys, i * KEY_LAYOUT.size), ...decodeValue(values, i * VALUE_LAYOUT.size) });
    return out;
  }

  /** The connect programs on the cgroup that use this verdict map (another verdict's or telemetry's are not listed). */
  attachedPrograms(): AttachedProgram[] {
    if (this.cgroup === null) return [];
    const handle = this.open();
    const cgroup = this.cgroup;
    return callNative('ERR_FASTPATH_UNAVAILABLE', () => this.addon.queryCgroup(handle, cgroup));
  }

  /** Takes the connect programs off the cgroup (the maps stay). */
  detach(): void {
    const handle = this.open();
    callNative('ERR_FASTPATH_UNAVAILABLE', () => this.addon.detach(handle));
  }

  /** Attaches the connect programs to a cgroup v2 group. */
  attach(cgroupPath: string): void {
    const handle = this.open();
    callNative('ERR_FASTPATH_UNAVAILABLE', () => this.addon.attach(handle, cgroupPath));
    this.cgroup = cgroupPath;
  }

  /** Per-program invocation count and total run time (kernel.bpf_stats_enabled must be 1 to count). */
  programStats(): { name: string; runCount: number; runTimeNs: number }[] {
    const handle = this.open();
    return this.addon.programStats(handle).map((p) => ({ name: p.name, runCount: Number(p.runCount), runTimeNs: Number(p.runTimeNs) }));
  }

  /** Detaches the programs, removes the pins this process made, and drops the maps. */
  close(): void {
    if (this.handle) this.addon.close(this.handle);
    this.handle = null;
  }

  private open(): NativeHandle {
    if (!this.handle) throw new VerdictError('ERR_FASTPATH_UNAVAILABLE', 'kernel verdict map is closed');
    return this.handle;
  }

  private reserve(count: number): void {
    if (this.keyScratch.length >= count * KEY_LAYOUT.size) return;
    this.keyScratch = Buffer.alloc(count * KEY_LAYOUT.size);
    this.valueScratch = Buffer.alloc(count * VALUE_LAYOUT.size);
  }
}
