import { existsSync, statfsSync } from 'node:fs';

/** statfs f_type of a cgroup v2 filesystem (linux/magic.h): the only kind BPF cgroup programs attach to. */
const CGROUP2_SUPER_MAGIC = 0x63677270;

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
  // A cgroup v1 group has cgroup.procs too, and would fail later at attach with a bare EBADF.
  const fsType = cgroupFsType(cgroupPath);
  if (fsType !== CGROUP2_SUPER_MAGIC) {
    const why = typeof fsType === 'number' ? `statfs type 0x${fsType.toString(16)}; a cgroup v1 hierarchy?` : fsType;
    return { reason: 'CGROUP_MISSING', detail: `${cgroupPath} is not a cgroup v2 group: its filesystem is not cgroup2 (${why})` };
  }
  return loaded;
}

/** statfs f_type of the path, or why it could not be read. */
function cgroupFsType(path: string): number | string {
  try {
    return statfsSync(path).type;
  } catch (err) {
    return (err as Error).message;
  }
}
