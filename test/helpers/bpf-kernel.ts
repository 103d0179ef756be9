import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { KernelVerdictMap } from '../../src/fastpath/kernel-verdict-map';
import { bpfObjectPath, loadAddon, type FastpathAddon } from '../../src/fastpath/native-addon';

export const CGROUP2_ROOT = '/sys/fs/cgroup/unified';
const BPFFS = '/sys/fs/bpf';

/**
 * The kernel tests need root, Linux, cgroup v2, bpffs and the built addon. Missing any of them is a loud
 * failure with the reason (never a skip): CI runs as root and must exercise the real kernel path.
 */
export function requireBPF(): FastpathAddon {
  const why: string[] = [];
  if (process.platform !== 'linux') why.push(`not Linux (${process.platform})`);
  if (process.getuid?.() !== 0) why.push('not root');
  if (!existsSync(join(CGROUP2_ROOT, 'cgroup.procs'))) why.push(`no cgroup v2 at ${CGROUP2_ROOT}`);
  if (!existsSync(bpfObjectPath())) why.push(`${bpfObjectPath()} missing (npm run build:native)`);
  const loaded = loadAddon();
  if ('reason' in loaded) why.push(loaded.reason);
  if (why.length > 0 || 'reason' in loaded) throw new Error(`kernel fast path tests cannot run: ${why.join('; ')}`);
  ensureBPFFS();
  return loaded.addon;
}

function ensureBPFFS(): void {
  if (readFileSync('/proc/mounts', 'utf8').includes(` ${BPFFS} bpf `)) return;
  execFileSync('mount', ['-t', 'bpf', 'bpf', BPFFS]);
}

export interface TestCgroup {
  path: string;
  /** Moves a process into the group: from then on its connect() calls run the attached programs. */
  enter(pid: number): void;
  remove(): void;
}

/** A fresh cgroup v2 group only the test's own child processes join (the rest of the machine is untouched). */
export function createTestCgroup(name: string): TestCgroup {
  const path = join(CGROUP2_ROOT, `verdict-test-${name}-${process.pid}`);
  mkdirSync(path, { recursive: true });
  return {
    path,
    enter: (pid) => writeFileSync(join(path, 'cgroup.procs'), String(pid)),
    remove: () => {
      // Members must leave before the group can go; the test's children are killed before this.
      for (const pid of readFileSync(join(path, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
        try {
          writeFileSync(join(CGROUP2_ROOT, 'cgroup.procs'), pid);
        } catch {
          // the process exited meanwhile
        }
      }
      rmdirSync(path);
    },
  };
}

/** A bpffs directory for one test's pinned maps. */
export function testPinDir(name: string): string {
  return join(BPFFS, `verdict-test-${name}-${process.pid}`);
}

export function removePinDir(dir: string): void {
  for (const m of ['verdicts', 'generation', 'counters']) {
    try {
      execFileSync('rm', ['-f', join(dir, m)]);
    } catch {
      // absent
    }
  }
  if (existsSync(dir)) rmdirSync(dir);
}

/** A loaded kernel verdict map attached to `cgroupPath` (or not attached when null). */
export function loadTestMap(addon: FastpathAddon, cgroupPath: string | null, maxEntries = 1024): KernelVerdictMap {
  return KernelVerdictMap.load(addon, { objectPath: bpfObjectPath(), maxEntries, pinDir: null, cgroupPath });
}

export interface PinnedMapSpec {
  type: string;
  key: number;
  value: number;
  entries: number;
}

/** The layouts the programs define (bpf/fastpath.h, bpf/kernel-telemetry.h), as bpftool spells them; verdicts/conn_stats sized 16. */
export const FASTPATH_PINS: Record<'verdicts' | 'generation' | 'counters', PinnedMapSpec> = {
  verdicts: { type: 'lru_hash', key: 36, value: 24, entries: 16 },
  generation: { type: 'array', key: 4, value: 8, entries: 1 },
  counters: { type: 'percpu_array', key: 4, value: 8, entries: 4 },
};
export const TELEMETRY_PINS: Record<'conn_stats' | 'health', PinnedMapSpec> = {
  conn_stats: { type: 'lru_percpu_hash', key: 32, value: 384, entries: 16 },
  health: { type: 'percpu_array', key: 4, value: 8, entries: 3 },
};

/**
 * Creates a map with bpftool and pins it at `path`, as any tool (or any user allowed to) could; a hash map
 * (not per-CPU) also gets one entry of 0xff bytes, so a reader that trusted the layout would copy its key and value.
 */
export function pinForeignMap(path: string, spec: PinnedMapSpec): void {
  const name = basename(path).slice(0, 15);
  const args = ['type', spec.type, 'key', String(spec.key), 'value', String(spec.value), 'entries', String(spec.entries)];
  execFileSync('bpftool', ['map', 'create', path, ...args, 'name', name]);
  if (spec.type !== 'hash' && spec.type !== 'lru_hash') return;
  const hex = (n: number, byte: string): string[] => ['hex', ...Array.from({ length: n }, () => byte)];
  execFileSync('bpftool', ['map', 'update', 'pinned', path, 'key', ...hex(spec.key, '01'), 'value', ...hex(spec.value, 'ff')]);
}

/** A pin directory of this process (0700, root) holding the given maps. */
export function pinForeignMaps(dir: string, specs: Record<string, PinnedMapSpec>): void {
  mkdirSync(dir, { mode: 0o700 });
  for (const [name, spec] of Object.entries(specs)) pinForeignMap(join(dir, name), spec);
}

/** Removes a test's pin directory and whatever is in it (pins, symlinks: never followed). */
export function removeTestPins(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
