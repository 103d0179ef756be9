import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bpfObjectPath } from '../../src/fastpath/native-addon';
import { KernelVerdictMap } from '../../src/fastpath/kernel-verdict-map';
import { loadTelemetryAddon, telemetryObjectPath } from '../../src/kerneltelemetry/telemetry-addon';
import { KernelTelemetryMaps } from '../../src/kerneltelemetry/telemetry-maps';
import { packageRoot } from '../../src/package-root';
import {
  FASTPATH_PINS,
  TELEMETRY_PINS,
  createTestCgroup,
  pinForeignMap,
  pinForeignMaps,
  removeTestPins,
  requireBPF,
  testPinDir,
  type PinnedMapSpec,
  type TestCgroup,
} from '../helpers/bpf-kernel';
import { verdictErrorOf } from '../helpers/error-code';
import { requireTelemetryBPF } from '../helpers/kernel-telemetry-fixtures';
import { checkClient, httpCheckRequest, startTestVerdict, tempDir } from '../helpers/verdict-harness';

/*
 * The bpffs root is mode 1777: what sits at a pin path may have been made by anyone. Each test makes the
 * hostile state itself (bpftool-created maps, symlinks, another user's directory, made by a real uid 65534
 * process). Readers of foreign maps run the built code (dist/) in a child process, so a reader that trusted
 * one would crash the child, not the test runner.
 */

const NOBODY = 65534;

/** Runs a command as uid/gid 65534: what any local user can do to bpffs. */
function asNobody(cmd: string, ...args: string[]): void {
  const r = spawnSync(cmd, args, { uid: NOBODY, gid: NOBODY, encoding: 'utf8', cwd: '/' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} as nobody: ${r.stderr}`);
}

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** `verdict fastpath <cmd>` on the pins under `dir`, verdict map of 16 entries. */
function fastpathCli(cmd: 'status' | 'dump', dir: string): Run {
  const args = [join(packageRoot(), 'bin', 'verdict.js'), 'fastpath', cmd, '--json'];
  const sets = [`fastpath.pinPath=${dir}`, 'fastpath.maxEntries=16', 'fastpath.cgroupPath=null'].flatMap((s) => ['--set', s]);
  return spawnSync(process.execPath, [...args, ...sets], { encoding: 'utf8', cwd: packageRoot() });
}

/** KernelTelemetryMaps.openPinned(dir, 16) then health() and read(): prints the VerdictError's code and message, or "no error". */
function telemetryReader(dir: string): Run {
  const dist = (p: string): string => JSON.stringify(join(packageRoot(), 'dist', 'src', 'kerneltelemetry', p));
  const script = `
    const { KernelTelemetryMaps } = require(${dist('telemetry-maps.js')});
    const { loadTelemetryAddon } = require(${dist('telemetry-addon.js')});
    let out = 'no error';
    try {
      const maps = KernelTelemetryMaps.openPinned(loadTelemetryAddon().addon, ${JSON.stringify(dir)}, 16);
      maps.health();
      maps.read(1000);
      maps.close();
    } catch (err) {
      out = err.code + ': ' + err.message;
    }
    process.stdout.write(out);`;
  return spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

describe('hostile pins: a pinned map of another layout is refused before it is read', () => {
  const dir = testPinDir('layout');

  beforeAll(() => {
    requireBPF();
    requireTelemetryBPF();
  });
  afterEach(() => removeTestPins(dir));

  const fastpathCases: { name: string; map: keyof typeof FASTPATH_PINS; spec: Partial<PinnedMapSpec> }[] = [
    { name: 'generation with 4096-byte values', map: 'generation', spec: { value: 4096 } },
    { name: 'verdicts with 64-byte keys', map: 'verdicts', spec: { key: 64 } },
    { name: 'verdicts with 4096-byte values', map: 'verdicts', spec: { value: 4096 } },
    { name: 'counters with 4096-byte values', map: 'counters', spec: { value: 4096 } },
    { name: 'counters that is not per-CPU', map: 'counters', spec: { type: 'array' } },
    { name: 'verdicts that is a plain hash, not LRU', map: 'verdicts', spec: { type: 'hash' } },
    { name: 'verdicts of 32 entries when fastpath.maxEntries is 16', map: 'verdicts', spec: { entries: 32 } },
  ];
  it.each(fastpathCases)(
    '`fastpath status` and `dump` refuse a pinned $name: exit 1 (no signal) with ERR_FASTPATH_UNAVAILABLE EBPF_LAYOUT naming the map',
    ({ map, spec }) => {
      pinForeignMaps(dir, { ...FASTPATH_PINS, [map]: { ...FASTPATH_PINS[map], ...spec } });
      for (const cmd of ['status', 'dump'] as const) {
        const r = fastpathCli(cmd, dir);
        expect({ cmd, status: r.status, signal: r.signal, stdout: r.stdout }).toEqual({ cmd, status: 1, signal: null, stdout: '' });
        expect(r.stderr).toMatch(
          new RegExp(`^verdict: ERR_FASTPATH_UNAVAILABLE: EBPF_LAYOUT: LAYOUT: ${escape(join(dir, map))} is a map of type \\d+, key `),
        );
      }
    },
  );

  it('`fastpath status` refuses a pinned program where a map should be: exit 1 with EBPF_LAYOUT "is not a BPF map"', () => {
    pinForeignMaps(dir, { generation: FASTPATH_PINS.generation, counters: FASTPATH_PINS.counters });
    execFileSync('bpftool', ['prog', 'load', bpfObjectPath(), join(dir, 'verdicts')]);
    const r = fastpathCli('status', dir);
    expect({ status: r.status, signal: r.signal, stdout: r.stdout }).toEqual({ status: 1, signal: null, stdout: '' });
    expect(r.stderr).toBe(
      `verdict: ERR_FASTPATH_UNAVAILABLE: EBPF_LAYOUT: LAYOUT: ${join(dir, 'verdicts')} is not a BPF map (anon_inode:bpf-prog)\n`,
    );
  });

  it('`fastpath status` reads pins of the layouts fastpath.bpf.c defines: exit 0, the one pinned entry counted', () => {
    pinForeignMaps(dir, FASTPATH_PINS);
    const r = fastpathCli('status', dir);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    expect(JSON.parse(r.stdout)).toMatchObject({ entries: 1, maxEntries: 16, generation: '0' });
  });

  const telemetryCases: { name: string; map: keyof typeof TELEMETRY_PINS; spec: Partial<PinnedMapSpec> }[] = [
    { name: 'conn_stats with 64-byte keys', map: 'conn_stats', spec: { key: 64 } },
    { name: 'conn_stats with 4096-byte values', map: 'conn_stats', spec: { value: 4096 } },
    { name: 'conn_stats that is not per-CPU', map: 'conn_stats', spec: { type: 'lru_hash' } },
    { name: 'health with 4096-byte values', map: 'health', spec: { value: 4096 } },
    { name: 'conn_stats of 32 entries when maxEntries is 16', map: 'conn_stats', spec: { entries: 32 } },
  ];
  it.each(telemetryCases)(
    'kernel telemetry refuses a pinned $name with ERR_KERNEL_TELEMETRY_UNAVAILABLE EBPF_KT_LAYOUT naming the map',
    ({ map, spec }) => {
      pinForeignMaps(dir, { ...TELEMETRY_PINS, [map]: { ...TELEMETRY_PINS[map], ...spec } });
      const r = telemetryReader(dir);
      expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: '' });
      expect(r.stdout).toMatch(
        new RegExp(
          `^ERR_KERNEL_TELEMETRY_UNAVAILABLE: EBPF_KT_LAYOUT: kernel telemetry LAYOUT: ${escape(join(dir, map))} is a map of type \\d+, key `,
        ),
      );
    },
  );

  it('kernel telemetry reads pins of the layouts kernel-telemetry.bpf.c defines without an error', () => {
    pinForeignMaps(dir, TELEMETRY_PINS);
    expect(telemetryReader(dir)).toMatchObject({ status: 0, stdout: 'no error', stderr: '' });
  });
});

/** The two loaders that pin, as one shape: each throws its capability's VerdictError. */
const loaders = [
  {
    capability: 'fast path',
    code: 'ERR_FASTPATH_UNAVAILABLE',
    prefix: 'EBPF_',
    names: Object.keys(FASTPATH_PINS),
    load: (pinDir: string) =>
      KernelVerdictMap.load(requireBPF(), { objectPath: bpfObjectPath(), maxEntries: 16, pinDir, cgroupPath: null }),
    spec: (name: string): PinnedMapSpec => FASTPATH_PINS[name as keyof typeof FASTPATH_PINS],
  },
  {
    capability: 'kernel telemetry',
    code: 'ERR_KERNEL_TELEMETRY_UNAVAILABLE',
    prefix: 'EBPF_KT_',
    names: Object.keys(TELEMETRY_PINS),
    load: (pinDir: string) => {
      const loaded = loadTelemetryAddon();
      if ('reason' in loaded) throw new Error(loaded.reason);
      return KernelTelemetryMaps.load(loaded.addon, { objectPath: telemetryObjectPath(), maxEntries: 16, pinDir, cgroupPath: null });
    },
    spec: (name: string): PinnedMapSpec => TELEMETRY_PINS[name as keyof typeof TELEMETRY_PINS],
  },
];

describe('hostile pins: the pin directory and what is in it', () => {
  const dir = testPinDir('dir');
  let victim: string;
  let cgroup: TestCgroup;

  beforeAll(() => {
    requireBPF();
    requireTelemetryBPF();
    cgroup = createTestCgroup('pins');
  });
  afterAll(() => cgroup?.remove());
  afterEach(() => {
    removeTestPins(dir);
    rmSync(victim, { recursive: true, force: true });
  });

  /** A root-owned directory outside bpffs holding files named like every pin, and one more. */
  const makeVictim = (): string[] => {
    victim = tempDir('verdict-pin-victim-');
    const names = [...Object.keys(FASTPATH_PINS), ...Object.keys(TELEMETRY_PINS), 'keep'].sort();
    for (const n of names) writeFileSync(join(victim, n), 'root data');
    return names;
  };

  it('a symlink another user put at fastpath.pinPath: the fast path is off saying so, Check is answered, the target keeps every file', async () => {
    const files = makeVictim();
    asNobody('ln', '-s', victim, dir);
    const verdict = await startTestVerdict(['fastpath.enabled=true', `fastpath.cgroupPath=${cgroup.path}`, `fastpath.pinPath=${dir}`]);
    const client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
    try {
      const status = verdict.fastpath.status();
      expect(status).toMatchObject({ enabled: false, reason: 'BPF_LOAD_FAILED' });
      expect(status.detail).toContain(`EBPF_PIN_DIR: PIN_DIR: ${dir} is a symlink`);
      expect((await client.check(httpCheckRequest({ path: '/' }))).status).toBeDefined();
    } finally {
      client.close();
      await verdict.stop();
    }
    expect(readdirSync(victim).sort()).toEqual(files);
  });

  it('a dangling symlink another user put at fastpath.pinPath, with fastpath.required: start fails with ERR_FASTPATH_UNAVAILABLE naming it', async () => {
    makeVictim();
    asNobody('ln', '-s', join(victim, 'nonexistent'), dir);
    const start = startTestVerdict([
      'fastpath.enabled=true',
      'fastpath.required=true',
      `fastpath.cgroupPath=${cgroup.path}`,
      `fastpath.pinPath=${dir}`,
    ]);
    await expect(start).rejects.toMatchObject({
      code: 'ERR_FASTPATH_UNAVAILABLE',
      message: expect.stringContaining(`EBPF_PIN_DIR: PIN_DIR: ${dir} is a symlink`) as unknown,
    });
  });

  /** What each case leaves at the pin path before the load, and what must still be there after it. */
  const refusals: { name: string; setup: (names: string[]) => void; refusal: (names: string[]) => string }[] = [
    {
      name: 'a directory another user made (mode 0777)',
      setup: () => {
        asNobody('mkdir', dir);
        asNobody('chmod', '0777', dir);
      },
      refusal: () => `PIN_DIR: ${dir} is owned by another user (uid ${NOBODY}, not 0)`,
    },
    {
      name: 'a root directory writable by others (mode 0777)',
      setup: () => {
        mkdirSync(dir);
        chmodSync(dir, 0o777);
      },
      refusal: () => `PIN_DIR: ${dir} is writable by group or others (mode 0777)`,
    },
    {
      name: 'a symlink at a map name in the pin directory',
      setup: (names) => {
        mkdirSync(dir, { mode: 0o700 });
        symlinkSync(join(victim, names[0] as string), join(dir, names[0] as string));
      },
      refusal: (names) => `PIN: ${dir}/${names[0]} is a symlink, not a pinned BPF object (refused)`,
    },
  ];
  const refusalCases = loaders.flatMap((l) => refusals.map((r) => ({ ...r, loader: l, capability: l.capability })));
  it.each(refusalCases)(
    '$capability refuses to pin into $name: a coded error saying what is wrong, and nothing there changes',
    ({ loader, setup, refusal }) => {
      const files = makeVictim();
      setup(loader.names);
      const before = readdirSync(dir).sort();
      const err = verdictErrorOf(() => loader.load(dir));
      expect(err.code).toBe(loader.code);
      expect(err.message).toContain(refusal(loader.names));
      expect(readdirSync(dir).sort()).toEqual(before);
      expect(readdirSync(victim).sort()).toEqual(files);
    },
  );

  it('the fast path refuses a pinPath that is not on bpffs, and removes the directory it made there', () => {
    makeVictim();
    const notBpffs = join(victim, 'pins');
    const err = verdictErrorOf(() => loaders[0]!.load(notBpffs));
    expect(err.message).toContain(`PIN_DIR: ${notBpffs} is not on a bpf filesystem`);
    expect(readdirSync(victim)).not.toContain('pins');
  });

  it.each(loaders)(
    '$capability removes on close only the pins it made: one replaced meanwhile stays, and so does the directory',
    (loader) => {
      const maps = loader.load(dir);
      expect(readdirSync(dir).sort()).toEqual([...loader.names].sort());
      const replaced = loader.names[1] as string;
      rmSync(join(dir, replaced));
      pinForeignMap(join(dir, replaced), loader.spec(replaced));
      maps.close();
      expect(readdirSync(dir)).toEqual([replaced]);
    },
  );

  it('`fastpath status` refuses maps of the right layout in a directory another user owns, with EBPF_PIN_DIR', () => {
    asNobody('mkdir', dir);
    for (const [name, spec] of Object.entries(FASTPATH_PINS)) pinForeignMap(join(dir, name), spec);
    const r = fastpathCli('status', dir);
    expect({ status: r.status, signal: r.signal, stdout: r.stdout }).toEqual({ status: 1, signal: null, stdout: '' });
    expect(r.stderr).toBe(
      `verdict: ERR_FASTPATH_UNAVAILABLE: EBPF_PIN_DIR: PIN_DIR: ${dir} is owned by another user (uid ${NOBODY}, not 0)\n`,
    );
  });

  it('`fastpath status` refuses a pin that is a symlink, even to a map of the right layout, with EBPF_OPEN_PINNED', () => {
    const elsewhere = testPinDir('elsewhere');
    pinForeignMaps(elsewhere, { generation: FASTPATH_PINS.generation });
    try {
      pinForeignMaps(dir, { verdicts: FASTPATH_PINS.verdicts, counters: FASTPATH_PINS.counters });
      symlinkSync(join(elsewhere, 'generation'), join(dir, 'generation'));
      const r = fastpathCli('status', dir);
      expect({ status: r.status, signal: r.signal, stdout: r.stdout }).toEqual({ status: 1, signal: null, stdout: '' });
      expect(r.stderr).toBe(
        `verdict: ERR_FASTPATH_UNAVAILABLE: EBPF_OPEN_PINNED: OPEN_PINNED: ${dir}/generation is a symlink, not a pinned BPF object (refused)\n`,
      );
    } finally {
      removeTestPins(elsewhere);
    }
  });
});

describe('hostile pins: a pin path another verdict is using', () => {
  const dir = testPinDir('inuse');
  let cgroup: TestCgroup;

  beforeAll(() => {
    requireBPF();
    requireTelemetryBPF();
    cgroup = createTestCgroup('inuse');
  });
  afterAll(() => cgroup?.remove());
  afterEach(() => removeTestPins(dir));

  it.each(loaders)(
    '$capability: a second load on a pinPath whose maps a loaded program uses is refused with EBPF_PIN_IN_USE, and the first keeps its pins (removed when it closes)',
    (loader) => {
      const first = loader.load(dir);
      try {
        const ids = () => readdirSync(dir).map((n) => `${n}:${mapIdAt(join(dir, n))}`);
        const before = ids();
        const err = verdictErrorOf(() => loader.load(dir));
        expect(err.code).toBe(loader.code);
        expect(err.message).toMatch(
          new RegExp(
            `^${loader.prefix}PIN_IN_USE: .*PIN_IN_USE: ${escape(join(dir, loader.names[0] as string))} is map \\d+ of program \\d+ `,
          ),
        );
        expect(ids()).toEqual(before);
      } finally {
        first.close();
      }
      expect(existsSync(dir)).toBe(false);
    },
  );

  it('a second verdict on the pinPath of a running fast path runs with its fast path off (PIN_IN_USE), answers Check, and leaves the first readable by `fastpath status`', async () => {
    const first = KernelVerdictMap.load(requireBPF(), {
      objectPath: bpfObjectPath(),
      maxEntries: 16,
      pinDir: dir,
      cgroupPath: cgroup.path,
    });
    try {
      first.write([
        {
          srcAddress: '10.0.0.1',
          dstAddress: '10.0.0.2',
          dstPort: 80,
          action: 'deny',
          generation: 1n,
          expiresNs: first.kernelNowNs() + 60_000_000_000n,
        },
      ]);
      const second = await startTestVerdict([
        'fastpath.enabled=true',
        'fastpath.maxEntries=16',
        `fastpath.cgroupPath=${cgroup.path}`,
        `fastpath.pinPath=${dir}`,
      ]);
      const client = checkClient(`127.0.0.1:${second.grpcPort}`);
      try {
        const status = second.fastpath.status();
        expect(status).toMatchObject({ enabled: false, reason: 'BPF_LOAD_FAILED' });
        expect(status.detail).toContain('EBPF_PIN_IN_USE');
        expect((await client.check(httpCheckRequest({ path: '/' }))).status).toBeDefined();
      } finally {
        client.close();
        await second.stop();
      }
      const r = fastpathCli('status', dir);
      expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
      expect(JSON.parse(r.stdout)).toMatchObject({ entries: 1 });
    } finally {
      first.close();
    }
  });

  it.each(loaders)(
    '$capability replaces pins of the right layout that no loaded program uses (left by a verdict that is gone)',
    (loader) => {
      pinForeignMaps(dir, Object.fromEntries(loader.names.map((n) => [n, loader.spec(n)])));
      const stale = readdirSync(dir).map((n) => mapIdAt(join(dir, n)));
      const maps = loader.load(dir);
      try {
        const now = readdirSync(dir).map((n) => mapIdAt(join(dir, n)));
        expect(now.filter((id) => stale.includes(id))).toEqual([]);
      } finally {
        maps.close();
      }
    },
  );

  it.each(loaders)('$capability refuses to replace a pinned program at a map name (not a pin of its own), leaving it there', (loader) => {
    mkdirSync(dir, { mode: 0o700 });
    const name = loader.names[0] as string;
    execFileSync('bpftool', ['prog', 'load', bpfObjectPath(), join(dir, name)]);
    const err = verdictErrorOf(() => loader.load(dir));
    expect(err.message).toContain(`${loader.prefix}PIN: `);
    expect(err.message).toContain(`${join(dir, name)} is not a BPF map (refused: not a pin of ours to replace)`);
    expect(readdirSync(dir)).toEqual([name]);
  });
});

/** The id of the map pinned at `path` (bpftool). */
function mapIdAt(path: string): number {
  return (JSON.parse(execFileSync('bpftool', ['-j', 'map', 'show', 'pinned', path], { encoding: 'utf8' })) as { id: number }).id;
}
