import type { AttachedProgram } from './native-addon';
import type { KernelCounters, KernelEntry, KernelVerdictMap } from './kernel-verdict-map';

export interface KernelStatus {
  attached: AttachedProgram[];
  generation: string;
  /** Entries in the map, and how many of them the kernel would obey now (current generation, unexpired). */
  entries: number;
  liveEntries: number;
  maxEntries: number;
  counters: KernelCounters;
}

export interface DumpedEntry {
  src: string;
  dst: string;
  dstPort: number;
  action: 'allow' | 'deny';
  generation: string;
  state: 'live' | 'expired' | 'old-generation';
  expiresInMs: number;
}

export function readKernelStatus(map: KernelVerdictMap, maxEntries: number): KernelStatus {
  const generation = map.generation();
  const nowNs = map.kernelNowNs();
  const entries = map.entries(maxEntries);
  return {
    attached: map.attachedPrograms(),
    generation: generation.toString(),
    entries: entries.length,
    liveEntries: entries.filter((e) => stateOf(e, generation, nowNs) === 'live').length,
    maxEntries,
    counters: map.counters(),
  };
}

export function dumpEntries(map: KernelVerdictMap, limit: number): DumpedEntry[] {
  const generation = map.generation();
  const nowNs = map.kernelNowNs();
  return map.entries(limit).map((e) => ({
    src: e.srcAddress,
    dst: e.dstAddress,
    dstPort: e.dstPort,
    action: e.action,
    generation: e.generation.toString(),
    state: stateOf(e, generation, nowNs),
    expiresInMs: Number(e.expiresNs - nowNs) / 1e6,
  }));
}

function stateOf(e: KernelEntry, generation: bigint, nowNs: bigint): DumpedEntry['state'] {
  if (e.generation !== generation) return 'old-generation';
  return e.expiresNs > nowNs ? 'live' : 'expired';
}
