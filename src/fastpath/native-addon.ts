import { join } from 'node:path';
import { requireNative } from '../native-module';
import { packageRoot } from '../package-root';

/** An opaque libbpf object (or pinned maps) held by the addon; closed explicitly or when collected. */
export type NativeHandle = { readonly __brand: 'fastpath-handle' };

export interface NativeLayout {
  keySize: number;
  keySrc: number;
  keyDst: number;
  keyDstPort: number;
  keyFamily: number;
  valueSize: number;
  valueGeneration: number;
  valueExpiresNs: number;
  valueAction: number;
  actionAllow: number;
  actionDeny: number;
  counterCount: number;
}

export interface AttachedProgram {
  attachType: 'connect4' | 'connect6';
  id: number;
  name: string;
}

/** bpf/addon/fastpath-addon.c. Errors carry `code` "EBPF_<step>" and `errno`. */
export interface FastpathAddon {
  load(objectPath: string, maxEntries: number, pinDir: string | null): NativeHandle;
  /** The maps pinned under pinDir, refused (EBPF_LAYOUT) unless each has the layout of fastpath.bpf.c and the verdict map maxEntries slots. */
  openPinned(pinDir: string, maxEntries: number): NativeHandle;
  attach(handle: NativeHandle, cgroupPath: string): void;
  detach(handle: NativeHandle): void;
  close(handle: NativeHandle): void;
  update(handle: NativeHandle, keys: Buffer, values: Buffer, count: number): number;
  remove(handle: NativeHandle, keys: Buffer, count: number): number;
  setGeneration(handle: NativeHandle, generation: bigint): void;
  getGeneration(handle: NativeHandle): bigint;
  counters(handle: NativeHandle): bigint[];
  dump(handle: NativeHandle, limit: number): { keys: Buffer; values: Buffer; count: number };
  monotonicNs(): bigint;
  layout(): NativeLayout;
  /** The connect4/6 programs attached to the cgroup that use this handle's verdict map. */
  queryCgroup(handle: NativeHandle, cgroupPath: string): AttachedProgram[];
  programStats(handle: NativeHandle): { name: string; runCount: bigint; runTimeNs: bigint }[];
}

export function addonPath(): string {
  return join(packageRoot(), 'bpf', 'addon', 'build', 'Release', 'fastpath.node');
}

export function bpfObjectPath(): string {
  return join(packageRoot(), 'build', 'bpf', 'fastpath.bpf.o');
}

/** The addon, or the reason it cannot be used here (not built, wrong platform). */
export function loadAddon(): { addon: FastpathAddon } | { reason: string } {
  return requireNative<FastpathAddon>(addonPath());
}
