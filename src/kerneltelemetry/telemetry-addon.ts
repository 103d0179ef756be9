import { join } from 'node:path';
import { loadAddon } from '../fastpath/native-addon';
import { packageRoot } from '../package-root';

export type TelemetryHandle = { readonly __brand: 'kernel-telemetry-handle' };

interface StructLayout {
  size: number;
  [field: string]: number;
}

/** The kt* half of bpf/addon (telemetry-addon.c). Errors carry `code` "EBPF_KT_<step>" and `errno`. */
export interface KernelTelemetryAddon {
  ktLoad(objectPath: string, maxEntries: number, pinDir: string | null): TelemetryHandle;
  /** The maps pinned under pinDir, refused (EBPF_KT_LAYOUT) unless each has the layout of kernel-telemetry.bpf.c and conn_stats maxEntries slots. */
  ktOpenPinned(pinDir: string, maxEntries: number): TelemetryHandle;
  ktAttach(handle: TelemetryHandle, cgroupPath: string): void;
  ktDetach(handle: TelemetryHandle): void;
  ktClose(handle: TelemetryHandle): void;
  /** values: every kt_stats field (counters, then histogram slots) of each aggregate, as doubles. */
  ktRead(handle: TelemetryHandle, limit: number): { keys: Buffer; values: Float64Array; count: number; complete: boolean };
  ktHealth(handle: TelemetryHandle): bigint[];
  ktProgramStats(handle: TelemetryHandle): { name: string; runCount: bigint; runTimeNs: bigint }[];
  ktLayout(): { key: StructLayout; stats: StructLayout; histSlots: number; healthCount: number };
}

export function telemetryObjectPath(): string {
  return join(packageRoot(), 'build', 'bpf', 'kernel-telemetry.bpf.o');
}

/** The addon's telemetry functions, or why they cannot be used here. */
export function loadTelemetryAddon(): { addon: KernelTelemetryAddon } | { reason: string } {
  const loaded = loadAddon();
  if ('reason' in loaded) return loaded;
  const addon = loaded.addon as unknown as Partial<KernelTelemetryAddon>;
  if (typeof addon.ktLoad !== 'function') return { reason: 'native addon was built without kernel telemetry (npm run build:native)' };
  return { addon: addon as KernelTelemetryAddon };
}
