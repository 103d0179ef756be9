/**
 * Kernel telemetry, side by side in one run (root, real kernel, real sockets):
 *  1. cost per connection with the telemetry programs attached vs detached: connect() latency of the same
 *     client (loadtest/connect-probe.c in a test cgroup, interleaved blocks), and the programs' own run time
 *     per connection from kernel.bpf_stats_enabled (all four programs summed);
 *  2. scrape time of /metrics at ~10k verdict_kernel_* series (10 identities × 1000 destinations) vs the
 *     same registry without telemetry, and the batched kernel read alone;
 *  3. the decision observer's cost per Check (the only thing telemetry adds to the Check path).
 * Run: node dist/loadtest/bench-kernel-telemetry.js (after npm run build).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { systemClock } from '../src/clock';
import type { Decision } from '../src/decision/decision';
import type { DecisionRecord } from '../src/decisionlog/decision-record';
import { AllowIndex } from '../src/kerneltelemetry/allow-index';
import { CgroupIdentities } from '../src/kerneltelemetry/cgroup-identities';
import { EnabledKernelTelemetry, startKernelTelemetry } from '../src/kerneltelemetry/kernel-telemetry';
import { KernelTelemetryMaps } from '../src/kerneltelemetry/telemetry-maps';
import { KernelVerdictMap } from '../src/fastpath/kernel-verdict-map';
import { bpfObjectPath, loadAddon } from '../src/fastpath/native-addon';
import { loadTelemetryAddon, telemetryObjectPath } from '../src/kerneltelemetry/telemetry-addon';
import { createLogger } from '../src/telemetry/logger';
import { Metrics } from '../src/telemetry/metrics';
import { startEchoServer } from '../test/helpers/bpf-envoy';
import {
  connectSweepBinary,
  createCgroupTree,
  recordingDecisionLog,
  requireTelemetryBPF,
  runSweep,
  telemetrySettings,
} from '../test/helpers/kernel-telemetry-fixtures';
import { startConnectProbe, type ConnectProbe, type ProbeResult } from './lib/connect-probe';
import { percentiles, printRows, round } from './lib/stats';
import { runAsScript } from './lib/run-as-script';

/**
 * Latency and CPU: ROUNDS connects per side, one side after the other; run time: STATS_BLOCKS × PER_BLOCK
 * more (KT_BENCH_ROUNDS, KT_BENCH_STATS_BLOCKS override).
 */
const ROUNDS = Number(process.env.KT_BENCH_ROUNDS ?? 2000);
const STATS_BLOCKS = Number(process.env.KT_BENCH_STATS_BLOCKS ?? 20);
const PER_BLOCK = 50;
/** Every side's probe runs on this CPU (the last one): no side gets a quieter core. */
const PROBE_CPU = cpus().length - 1;

/** KT_BENCH_PARTS=connection,scrape,observer (default: all) runs only those parts. */
const PARTS = new Set((process.env.KT_BENCH_PARTS ?? 'connection,scrape,observer').split(','));

export async function run(): Promise<Record<string, unknown>> {
  requireTelemetryBPF();
  const result: Record<string, unknown> = {};
  if (PARTS.has('connection')) {
    const c = await connectionCost();
    result.connection = c;
    const names = Object.keys(c.sides);
    const col = (fn: (s: (typeof c.sides)[string]) => number): string[] => names.map((n) => f(fn(c.sides[n]!)));
    printRows([
      ['connect()', 'detached', ...names],
      ['p50 µs', f(c.detachedP50Us), ...col((s) => s.p50Us)],
      ['added p50 µs', '-', ...col((s) => s.addedP50Us)],
      ['added p90 µs', '-', ...col((s) => s.addedP90Us)],
      ['CPU connect+close p50 µs', f(c.detachedCpuP50Us), ...col((s) => s.cpuP50Us)],
      ['added CPU p50 µs', '-', ...col((s) => s.addedCpuP50Us)],
      ['programs ns / connection', '-', ...col((s) => s.programNsPerConnection)],
    ]);
    printRows([['program (median block)', 'runs / conn', 'ns / run', 'ns / conn']]);
    for (const n of names)
      for (const [prog, p] of Object.entries(c.sides[n]!.programs))
        printRows([[`  ${n} ${prog}`, f(p.runsPerConnection), f(p.nsPerRun), f(p.nsPerConnection)]]);
  }
  if (PARTS.has('scrape')) {
    const scrape = await scrapeCost();
    result.scrape = scrape;
    printRows([
      ['', 'telemetry', 'without', 'ratio'],
      [`scrape ms (${scrape.series} series)`, f(scrape.withP50Ms), f(scrape.withoutP50Ms), f(scrape.withP50Ms / scrape.withoutP50Ms)],
      ['kernel read ms (batched)', f(scrape.readP50Ms), '-', '-'],
    ]);
  }
  if (PARTS.has('observer')) {
    const observer = observerCost();
    result.observer = observer;
    printRows([['observer µs / Check', f(observer.usPerCheck)]]);
  }
  return result;
}

const f = (n: number | null): string => (n === null ? '-' : String(round(n)));

/**
 * One side of the comparison: a connect-probe in its own sibling cgroup, with a set of programs attached to
 * that cgroup (this build's telemetry, an older object to compare against, the fast path alone) or none.
 */
interface Side {
  name: string;
  maps: KernelTelemetryMaps | null;
  probe: ConnectProbe;
  wall: number[];
  cpu: number[];
}

/**
 * Every side's programs stay attached for the whole run, each to its own sibling cgroup, and the connects go
 * round-robin across the sides one at a time (no attach/detach churn, and machine load drifts alike for
 * all). "detached" is a cgroup with no program: it still pays the kernel's check that finds none, which is
 * on for every socket of the host once any sockops program is attached anywhere.
 */
async function connectionCost() {
  const loaded = loadTelemetryAddon();
  if ('reason' in loaded) throw new Error(loaded.reason);
  const addon = loaded.addon;
  // KT_BENCH_BASELINE=[name=]<an older kernel-telemetry.bpf.o>[,...]: measured in the same rounds as this
  // build's programs (before vs after).
  const objects: [string, string][] = [['attached', telemetryObjectPath()]];
  for (const [i, spec] of (process.env.KT_BENCH_BASELINE ?? '').split(',').filter(Boolean).entries()) {
    const [name, path] = spec.includes('=') ? spec.split('=', 2) : [i === 0 ? 'baseline' : `baseline${i + 1}`, spec];
    objects.push([name!, path!]);
  }
  const tree = createCgroupTree('ktbench', ['detached', 'fastpath', ...objects.map(([n]) => n)]);
  const up = await startEchoServer();
  const statsWas = readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim();
  const fpAddon = loadAddon();
  if ('reason' in fpAddon) throw new Error(fpAddon.reason);
  // The fast path's connect program alone (one hash lookup) on a side of its own: a yardstick under the same load.
  const yardstick = KernelVerdictMap.load(fpAddon.addon, {
    objectPath: bpfObjectPath(),
    maxEntries: 1024,
    pinDir: null,
    cgroupPath: tree.child.fastpath!.path,
  });
  yardstick.setGeneration(1n);
  const sides: Side[] = [];
  const side = async (name: string, maps: KernelTelemetryMaps | null): Promise<void> => {
    sides.push({ name, maps, probe: await startConnectProbe(tree.child[name]!, PROBE_CPU), wall: [], cpu: [] });
  };
  try {
    await side('detached', null);
    await side('fastpath', null);
    for (const [name, path] of objects)
      await side(name, KernelTelemetryMaps.load(addon, { objectPath: path, maxEntries: 4096, pinDir: null, cgroupPath: tree.child[name]!.path }));
    const connect = async (s: Side): Promise<ProbeResult> => {
      const r = await s.probe.connect({ src: '-', host: '127.0.0.1', port: up.port, mode: 'connect' });
      if (r.outcome !== 'connected') throw new Error(`connect-probe (${s.name}): ${r.outcome}`);
      return r;
    };
    // Latency and CPU with bpf_stats off (its two clock reads per program run would inflate only the
    // attached sides).
    writeFileSync('/proc/sys/kernel/bpf_stats_enabled', '0');
    for (let round = 0; round < ROUNDS; round++)
      for (let k = 0; k < sides.length; k++) {
        const s = sides[(round + k) % sides.length]!;
        const r = await connect(s);
        s.wall.push(r.elapsedNs);
        s.cpu.push(r.cpuNs);
      }
    // Then the programs' own run time, bpf_stats on, per block of connects: a block whose runs were
    // interrupted (run time counts it) is outvoted, the figure is the median block.
    const measured = sides.filter((s) => s.name !== 'detached');
    const programStats = (s: Side) => (s.maps ?? yardstick).programStats();
    const blocks = new Map<string, Map<string, { runs: number[]; ns: number[] }>>(measured.map((s) => [s.name, new Map()]));
    writeFileSync('/proc/sys/kernel/bpf_stats_enabled', '1');
    for (let block = 0; block < STATS_BLOCKS; block++) {
      const before = measured.map((s) => new Map(programStats(s).map((p) => [p.name, p])));
      for (let i = 0; i < PER_BLOCK; i++) for (const s of measured) await connect(s);
      measured.forEach((s, j) => {
        for (const after of programStats(s)) {
          const was = before[j]!.get(after.name) ?? { runCount: 0, runTimeNs: 0 };
          const into = blocks.get(s.name)!;
          const b = into.get(after.name) ?? { runs: [], ns: [] };
          into.set(after.name, b);
          b.runs.push((after.runCount - was.runCount) / PER_BLOCK);
          b.ns.push((after.runTimeNs - was.runTimeNs) / PER_BLOCK);
        }
      });
    }
    writeFileSync('/proc/sys/kernel/bpf_stats_enabled', '0');
    const median = (xs: number[]): number => percentiles(xs, [50])[0] ?? NaN;
    const detached = sides[0]!;
    const [d50 = NaN, d90 = NaN] = percentiles(detached.wall, [50, 90]);
    const dCpu = median(detached.cpu);
    const bySide = Object.fromEntries(
      measured.map((s) => {
        const [a50 = NaN, a90 = NaN] = percentiles(s.wall, [50, 90]);
        const programs = [...blocks.get(s.name)!]
          .filter(([name]) => s.maps !== null || name === 'connect4')
          .map(([name, b]) => ({ name, runs: median(b.runs), ns: median(b.ns) }));
        return [
          s.name,
          {
            p50Us: a50 / 1e3,
            addedP50Us: (a50 - d50) / 1e3,
            addedP90Us: (a90 - d90) / 1e3,
            cpuP50Us: median(s.cpu) / 1e3,
            addedCpuP50Us: (median(s.cpu) - dCpu) / 1e3,
            programNsPerConnection: programs.reduce((n, p) => n + p.ns, 0),
            programs: Object.fromEntries(
              programs.map((p) => [
                p.name,
                { runsPerConnection: round(p.runs), nsPerRun: p.runs > 0 ? round(p.ns / p.runs) : null, nsPerConnection: round(p.ns) },
              ]),
            ),
          },
        ];
      }),
    );
    return { rounds: ROUNDS, detachedP50Us: d50 / 1e3, detachedCpuP50Us: dCpu / 1e3, sides: bySide };
  } finally {
    writeFileSync('/proc/sys/kernel/bpf_stats_enabled', statsWas);
    for (const s of sides) {
      await s.probe.close();
      s.maps?.close();
    }
    yardstick.close();
    up.server.close();
    tree.parent.remove();
  }
}

async function scrapeCost() {
  const names = Array.from({ length: 10 }, (_, i) => `w${i}`);
  const tree = createCgroupTree('ktscrape', names);
  const metrics = new Metrics({ defaultMetrics: false });
  const telemetry = startKernelTelemetry(
    telemetrySettings({
      enabled: true,
      required: true,
      cgroupPath: tree.parent.path,
      pinPath: null,
      pollIntervalMs: 0,
      minReadIntervalMs: 0,
      maxEntries: 16_384,
      topDestinations: 1000,
      identities: names.map((n) => ({ cgroupPath: tree.child[n]!.path, spiffeId: `spiffe://bench.example/${n}` })),
    }),
    { clock: systemClock, logger: createLogger('silent'), metrics, decisionLog: recordingDecisionLog(), workerSlot: null },
  ) as EnabledKernelTelemetry;
  const without = new Metrics({ defaultMetrics: false });
  try {
    const bin = connectSweepBinary();
    for (const n of names) await runSweep(bin, tree.child[n]!, 1000, 9, 'distinct');
    telemetry.refresh(true);
    const series = telemetry.series().length;
    const withMs: number[] = [];
    const withoutMs: number[] = [];
    const readMs: number[] = [];
    let bytes = 0;
    for (let i = 0; i < 20; i++) {
      // A scrape is its own event-loop turn (an HTTP request); within one turn the kernel is read once.
      await new Promise((resolve) => setImmediate(resolve));
      let t0 = process.hrtime.bigint();
      bytes = `${await metrics.registry.metrics()}${telemetry.metricsText()}`.length;
      withMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
      readMs.push((telemetry.status().lastRead?.durationNs ?? NaN) / 1e6);
      t0 = process.hrtime.bigint();
      await without.registry.metrics();
      withoutMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    return {
      series,
      scrapeBytes: bytes,
      withP50Ms: percentiles(withMs, [50])[0] ?? NaN,
      withoutP50Ms: percentiles(withoutMs, [50])[0] ?? NaN,
      readP50Ms: percentiles(readMs, [50])[0] ?? NaN,
    };
  } finally {
    telemetry.close();
    tree.parent.remove();
  }
}

function observerCost() {
  const identities = new CgroupIdentities(
    [],
    () => {},
    () => null,
  );
  const index = new AllowIndex(100_000, systemClock, identities);
  const records = Array.from({ length: 1000 }, (_, i) => ({
    input: {
      attributes: {
        source: { address: { socketAddress: { address: '10.0.0.7', portValue: 40000 } } },
        destination: { address: { socketAddress: { address: `10.1.${i >> 8}.${i & 255}`, portValue: 8080 } } },
      },
      spiffe: { id: `spiffe://bench.example/w${i % 10}` },
    },
  })) as unknown as DecisionRecord[];
  const decision = { allowed: true } as Decision;
  const calls = 200_000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) index.observe(records[i % records.length]!, decision);
  return { usPerCheck: Number(process.hrtime.bigint() - t0) / calls / 1e3 };
}

runAsScript(module, run);
