import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/package-root';
import {
  FASTPATH_PINS,
  TELEMETRY_PINS,
  pinForeignMaps,
  removeTestPins,
  requireBPF,
  testPinDir,
  type PinnedMapSpec,
} from '../helpers/bpf-kernel';
import { requireTelemetryBPF } from '../helpers/kernel-telemetry-fixtures';

/*
 * The bpffs root is mode 1777: what sits at a pin path may have been made by anyone. Each test makes the
 * hostile state itself (bpftool-created maps, symlinks, another user's directory) and runs the built code
 * (dist/) in a child process, so a reader that trusted it would crash the child, not the test runner.
 */

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
