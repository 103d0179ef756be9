import { existsSync } from 'node:fs';

export type KernelPrerequisiteReason = 'NOT_LINUX' | 'NOT_ROOT' | 'ADDON_MISSING' | 'CGROUP_MISSING';

/**
 * What both kernel capabilities (the fast path, kernel telemetry) need before they load BPF: Linux, root,
 * the native addon and the BPF object built, a cgroup v2 group to attach to. The addon on success; else the
 * first missing piece, as an off reason with a detail a user can act on.
 */
export function checkKernelPrerequisites<A>(
  loadAddon: () => { addon: A } | { reason: string },
  objectPath: string,
  cgroupPath: string,
): { addon: A } | { reason: KernelPrerequisiteReason; detail: string } {
  if (process.platform !== 'linux') return { reason: 'NOT_LINUX', detail: `eBPF needs Linux, this is ${process.platform}` };
  if (process.getuid?.() !== 0) return { reason: 'NOT_ROOT', detail: 'loading BPF programs needs root' };
  const loaded = loadAddon();
  if ('reason' in loaded) return { reason: 'ADDON_MISSING', detail: loaded.reason };
  if (!existsSync(objectPath)) return { reason: 'ADDON_MISSING', detail: `${objectPath} is not built (npm run build:native)` };
  if (!existsSync(`${cgroupPath}/cgroup.procs`)) return { reason: 'CGROUP_MISSING', detail: `${cgroupPath} is not a cgroup v2 group` };
  return loaded;
}
