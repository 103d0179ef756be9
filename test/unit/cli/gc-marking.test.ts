import { execFileSync } from 'node:child_process';
import type { EventLoopUtilization } from 'node:perf_hooks';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  GC_MARKING_TICK_MS,
  gcMarkingAddonPath,
  loadGcMarking,
  markingPressureBytes,
  startGcMarking,
  type GcMarkingAddon,
} from '../../../src/cli/gc-marking';
import type { Config } from '../../../src/config/schema';
import { Metrics } from '../../../src/telemetry/metrics';
import { recordingLogger } from '../../helpers/recording-logger';

// The built addon in a process of its own (--trace-gc prints every GC to its stdout): it builds a few MB of
// old-generation objects, then either asks for marking (argv "start") or not, and allocates only short-lived
// garbage for 60 turns, too little for V8 to start a full GC by itself. With the call, a Mark-Compact
// follows whose marking ran in steps (V8's "steps since start of marking"); without it, none.
const CHILD = `
const addon = require(${JSON.stringify(gcMarkingAddonPath())});
const kept = [];
for (let i = 0; i < 100000; i++) kept.push({ i, s: 'v' + i });
const before = process.memoryUsage().external;
if (process.argv[1] === 'start') addon.start(${markingPressureBytes()});
const after = process.memoryUsage().external;
let turn = 0, sink;
(function next() {
  for (let i = 0; i < 2000; i++) sink = { i };
  if (++turn < 60) setImmediate(next);
  else process.stdout.write('\\n' + JSON.stringify({ before, after, kept: kept.length }) + '\\n');
})();
`;

function runChild(mode: string): { trace: string; external: { before: number; after: number } } {
  const out = execFileSync(process.execPath, ['--trace-gc', '--single-threaded-gc', '-e', CHILD, mode], { encoding: 'utf8' });
  const lines = out.split('\n');
  const result = lines.find((l) => l.startsWith('{'))!;
  return { trace: lines.filter((l) => l !== result).join('\n'), external: JSON.parse(result) as { before: number; after: number } };
}

const config = (gcMarkingEveryChecks: number): Config => ({ server: { gcMarkingEveryChecks } }) as Config;

/** An event loop whose utilization between any two readings is whatever the test sets. */
function fakeLoop(): {
  set: (u: number) => void;
  utilization: (now?: EventLoopUtilization, before?: EventLoopUtilization) => EventLoopUtilization;
} {
  let load = 0;
  return {
    set: (u) => (load = u),
    utilization: (now, before) => ({ idle: 0, active: 0, utilization: now && before ? load : 0 }),
  };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('GC marking cadence', () => {
  it('the addon makes V8 start incremental marking at once, and leaves no external memory reported', () => {
    const started = runChild('start');
    expect(started.trace).toMatch(/Mark-Compact .* in \d+ steps since start of marking/);
    // 256 MiB reported for an instant: what remains is the few bytes the process itself allocated meanwhile.
    expect(Math.abs(started.external.after - started.external.before)).toBeLessThan(1024 * 1024);
    const control = runChild('none');
    expect(control.trace).toMatch(/Scavenge/);
    expect(control.trace).not.toMatch(/Mark-Compact/);
  });

  it('reports past the soft limit, and never near half of a small heap', () => {
    expect(markingPressureBytes(4096 * 1024 * 1024)).toBe(256 * 1024 * 1024);
    expect(markingPressureBytes(256 * 1024 * 1024)).toBe(64 * 1024 * 1024);
  });

  it('starts marking once per N Checks while the loop is under half busy, and counts each', async () => {
    vi.useFakeTimers();
    const starts: number[] = [];
    const addon: GcMarkingAddon = { start: (bytes) => starts.push(bytes) };
    const loop = fakeLoop();
    let received = 0;
    const metrics = new Metrics({ defaultMetrics: false });
    const stop = startGcMarking(config(1000), recordingLogger().logger, metrics, {
      received: () => received,
      loaded: { addon },
      utilization: loop.utilization,
    });
    received = 999;
    await vi.advanceTimersByTimeAsync(GC_MARKING_TICK_MS * 3);
    expect(starts).toEqual([]); // fewer than N Checks
    received = 1000;
    await vi.advanceTimersByTimeAsync(GC_MARKING_TICK_MS);
    expect(starts).toEqual([markingPressureBytes()]);
    await vi.advanceTimersByTimeAsync(GC_MARKING_TICK_MS * 3);
    expect(starts).toHaveLength(1); // no new Checks since
    received = 2500;
    loop.set(0.5);
    await vi.advanceTimersByTimeAsync(GC_MARKING_TICK_MS * 3);
    expect(starts).toHaveLength(1); // busy: V8's own cadence
    loop.set(0.2);
    await vi.advanceTimersByTimeAsync(GC_MARKING_TICK_MS);
    expect(starts).toHaveLength(2); // room again: at once
    stop();
    received = 10_000;
    await vi.advanceTimersByTimeAsync(GC_MARKING_TICK_MS * 3);
    expect(starts).toHaveLength(2);
    expect(await metrics.registry.metrics()).toMatch(/^verdict_gc_marking_starts_total 2$/m);
  });

  it('stops and says so when the addon throws (a fault the real addon cannot be made to produce)', async () => {
    vi.useFakeTimers();
    let calls = 0;
    const addon: GcMarkingAddon = {
      start: () => {
        calls++;
        throw new Error('external memory could not be reported');
      },
    };
    const { logger, lines } = recordingLogger();
    let received = 0;
    startGcMarking(config(10), logger, new Metrics({ defaultMetrics: false }), {
      received: () => received,
      loaded: { addon },
      utilization: fakeLoop().utilization,
    });
    received = 100;
    await vi.advanceTimersByTimeAsync(GC_MARKING_TICK_MS * 2);
    received = 200;
    await vi.advanceTimersByTimeAsync(GC_MARKING_TICK_MS * 2);
    expect(calls).toBe(1);
    expect(lines).toEqual([
      { level: 'warn', fields: { err: { message: 'external memory could not be reported' } }, msg: 'GC marking cadence failed; stopped' },
    ]);
  });

  it('says why it is off when the addon is not there, and is silent and idle at 0', async () => {
    vi.useFakeTimers();
    const missing = loadGcMarking('/nonexistent/gc_marking.node');
    expect(missing).toEqual({ reason: 'native addon /nonexistent/gc_marking.node is not built (npm run build:native)' });
    const { logger, lines } = recordingLogger();
    startGcMarking(config(10), logger, new Metrics({ defaultMetrics: false }), { received: () => 0, loaded: missing });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'info', fields: missing });
    let calls = 0;
    let received = 0;
    startGcMarking(config(0), logger, new Metrics({ defaultMetrics: false }), {
      received: () => received,
      loaded: { addon: { start: () => void calls++ } },
      utilization: fakeLoop().utilization,
    });
    received = 1_000_000;
    await vi.advanceTimersByTimeAsync(GC_MARKING_TICK_MS * 10);
    expect(calls).toBe(0);
    expect(lines).toHaveLength(1);
  });
});
