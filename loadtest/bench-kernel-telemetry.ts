/**
 * Kernel telemetry, side by side in one run (root, real kernel, real sockets):
 *  1. cost per connection with the telemetry programs attached vs detached (and vs an older object, with
 *     KT_BENCH_BASELINE): the probe thread's CPU and connect() latency, for a socket in the tracked cgroup
 *     and for one outside it, plus the programs' own run time from kernel.bpf_stats_enabled;
 *  2. Check throughput and server CPU per Check, verdict with kernel telemetry on vs off;
 *  3. scrape time of /metrics at ~10k verdict_kernel_* series (10 identities × 1000 destinations) vs the
 *     same registry without telemetry, and the batched kernel read alone;
 *  4. the decision observer's cost per Check (the only thing telemetry adds to the Check path).
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
import { AUTHORIZATION_SERVICE } from '../src/server/envoy-protos';
import { packageRoot } from '../src/package-root';
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
import { framedFixture } from './bench-transport';
import { startConnectProbe, type ProbeResult } from './lib/connect-probe';
import { runH2load } from './lib/h2load';
import { pinToCpu, processCpuMicros } from './lib/proc-cpu';
import { spawnVerdict, type VerdictProcess } from './lib/spawn-verdict';
import { percentiles, printRows, round } from './lib/stats';
import { runAsScript } from './lib/run-as-script';

/**
 * Latency and CPU: BLOCKS blocks per configuration of PER_BLOCK connects per probe; run time: STATS_BLOCKS
 * more blocks per configuration (KT_BENCH_BLOCKS, KT_BENCH_STATS_BLOCKS override).
 */
const BLOCKS = Number(process.env.KT_BENCH_BLOCKS ?? 20);
const STATS_BLOCKS = Number(process.env.KT_BENCH_STATS_BLOCKS ?? 10);
const PER_BLOCK = 100;
const CHECK_ROUNDS = Number(process.env.KT_BENCH_CHECK_ROUNDS ?? 4);
const CHECK_SECONDS = 3;
/** Every side's probe runs on this CPU (the last one): no side gets a quieter core. */
const PROBE_CPU = cpus().length - 1;

/** KT_BENCH_PARTS=connection,check,scrape,observer (default: all) runs only those parts. */
const PARTS = new Set((process.env.KT_BENCH_PARTS ?? 'connection,check,scrape,observer').split(','));

export async function run(): Promise<Record<string, unknown>> {
  requireTelemetryBPF();
  const result: Record<string, unknown> = {};
  if (PARTS.has('connection')) {
    const c = await connectionCost();
    result.connection = c;
    const names = Object.keys(c.configs);
    const col = (fn: (s: (typeof c.configs)[string]) => number): string[] => names.map((n) => f(fn(c.configs[n]!)));
    printRows([
      ['connect() (tracked cgroup)', 'detached', ...names],
      ['p50 µs', f(c.detachedP50Us), ...col((s) => s.p50Us)],
      ['added p50 µs', '-', ...col((s) => s.addedP50Us)],
      ['added p90 µs', '-', ...col((s) => s.addedP90Us)],
      ['CPU connect+close p50 µs', f(c.detachedCpuP50Us), ...col((s) => s.cpuP50Us)],
      ['added CPU p50 µs', '-', ...col((s) => s.addedCpuP50Us)],
      ['untracked: added p50 µs', '-', ...col((s) => s.untrackedAddedP50Us)],
      ['untracked: added CPU p50 µs', '-', ...col((s) => s.untrackedAddedCpuP50Us)],
      ['programs ns / connection', '-', ...col((s) => s.programNsPerConnection)],
    ]);
    printRows([['program (median block)', 'runs / conn', 'ns / run', 'ns / conn']]);
    for (const n of names)
      for (const [prog, p] of Object.entries(c.configs[n]!.programs))
        printRows([[`  ${n} ${prog}`, f(p.runsPerConnection), f(p.nsPerRun), f(p.nsPerConnection)]]);
  }
  if (PARTS.has('check')) {
    const check = await checkCost();
    result.check = check;
    printRows([
      ['Check (h2load, cache off)', 'telemetry on', 'off', 'ratio'],
      ['server CPU µs / Check', f(check.on.cpuUsPerCheck), f(check.off.cpuUsPerCheck), f(check.on.cpuUsPerCheck / check.off.cpuUsPerCheck)],
      ['Check/s', f(check.on.rps), f(check.off.rps), f(check.on.rps / check.off.rps)],
    ]);
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

/** A set of programs measured: this build's telemetry, an older object to compare against, the fast path alone. */
interface Config {
  name: string;
  attach(): void;
  detach(): void;
  programStats(): { name: string; runCount: number; runTimeNs: number }[];
  tracked: Sample;
  untracked: Sample;
}

interface Sample {
  wall: number[];
  cpu: number[];
}

/**
 * Two probes pinned to one CPU: "tracked" in a cgroup under the attach point, "untracked" in a sibling cgroup
 * outside it (what every other socket of the host pays: the tracepoints are not scoped by cgroup). Blocks of
 * connects alternate between the two; each block runs under one configuration, attached for that block only,
 * and the configurations (nothing attached among them) take turns in a rotating order, so load drift hits all.
 */
async function connectionCost() {
  const loaded = loadTelemetryAddon();
  if ('reason' in loaded) throw new Error(loaded.reason);
  const addon = loaded.addon;
  const tree = createCgroupTree('ktbench', ['mesh', 'other']);
  const up = await startEchoServer();
  const statsWas = readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim();
  const configs: Config[] = [];
  const cleanup: (() => void | Promise<void>)[] = [];
  const sample = (): Sample => ({ wall: [], cpu: [] });
  try {
    const fpAddon = loadAddon();
    if ('reason' in fpAddon) throw new Error(fpAddon.reason);
    const yardstick = KernelVerdictMap.load(fpAddon.addon, {
      objectPath: bpfObjectPath(),
      maxEntries: 1024,
      pinDir: null,
      cgroupPath: null,
    });
    cleanup.push(() => yardstick.close());
    yardstick.setGeneration(1n);
    const telemetry = (name: string, objectPath: string): void => {
      const maps = KernelTelemetryMaps.load(addon, { objectPath, maxEntries: 4096, pinDir: null, cgroupPath: null });
      cleanup.push(() => maps.close());
      configs.push({
        name,
        attach: () => maps.attach(tree.child.mesh!.path),
        detach: () => maps.detach(),
        programStats: () => maps.programStats(),
        tracked: sample(),
        untracked: sample(),
      });
    };
    configs.push({ name: 'detached', attach: () => {}, detach: () => {}, programStats: () => [], tracked: sample(), untracked: sample() });
    // The fast path's connect program alone (one hash lookup): a yardstick under the same load.
    configs.push({
      name: 'fastpath',
      attach: () => yardstick.attach(tree.child.mesh!.path),
      detach: () => yardstick.detach(),
      programStats: () => yardstick.programStats().filter((p) => p.name === 'connect4'),
      tracked: sample(),
      untracked: sample(),
    });
    telemetry('attached', telemetryObjectPath());
    // KT_BENCH_BASELINE=[name=]<an older kernel-telemetry.bpf.o>[,...]: in the same rounds (before vs after).
    for (const [i, spec] of (process.env.KT_BENCH_BASELINE ?? '').split(',').filter(Boolean).entries()) {
      const [name, path] = spec.includes('=') ? spec.split('=', 2) : [i === 0 ? 'baseline' : `baseline${i + 1}`, spec];
      telemetry(name!, path!);
    }
    const probes = {
      tracked: await startConnectProbe(tree.child.mesh!, PROBE_CPU),
      untracked: await startConnectProbe(tree.child.other!, PROBE_CPU),
    };
    cleanup.push(
      () => probes.tracked.close(),
      () => probes.untracked.close(),
    );
    const connect = async (which: 'tracked' | 'untracked'): Promise<ProbeResult> => {
      const r = await probes[which].connect({ src: '-', host: '127.0.0.1', port: up.port, mode: 'connect' });
      if (r.outcome !== 'connected') throw new Error(`connect-probe (${which}): ${r.outcome}`);
      return r;
    };
    const during = async (c: Config, fn: () => Promise<void>): Promise<void> => {
      c.attach();
      try {
        await fn();
      } finally {
        c.detach();
      }
    };
    // Latency and CPU with bpf_stats off (its two clock reads per program run would inflate only the attached side).
    writeFileSync('/proc/sys/kernel/bpf_stats_enabled', '0');
    for (let block = 0; block < BLOCKS; block++)
      for (let k = 0; k < configs.length; k++) {
        const c = configs[(block + k) % configs.length]!;
        await during(c, async () => {
          for (let i = 0; i < PER_BLOCK; i++)
            for (const which of i % 2 ? (['untracked', 'tracked'] as const) : (['tracked', 'untracked'] as const)) {
              const r = await connect(which);
              c[which].wall.push(r.elapsedNs);
              c[which].cpu.push(r.cpuNs);
            }
        });
      }
    // Then the programs' own run time, bpf_stats on, tracked connects only, per block: a block whose runs were
    // interrupted (run time counts it) is outvoted, the figure is the median block.
    const measured = configs.filter((c) => c.name !== 'detached');
    const blocks = new Map<string, Map<string, { runs: number[]; ns: number[] }>>(measured.map((c) => [c.name, new Map()]));
    writeFileSync('/proc/sys/kernel/bpf_stats_enabled', '1');
    for (let block = 0; block < STATS_BLOCKS; block++)
      for (const c of measured) {
        const before = new Map(c.programStats().map((p) => [p.name, p]));
        await during(c, async () => {
          for (let i = 0; i < PER_BLOCK; i++) await connect('tracked');
        });
        for (const after of c.programStats()) {
          const was = before.get(after.name) ?? { runCount: 0, runTimeNs: 0 };
          const into = blocks.get(c.name)!;
          const b = into.get(after.name) ?? { runs: [], ns: [] };
          into.set(after.name, b);
          b.runs.push((after.runCount - was.runCount) / PER_BLOCK);
          b.ns.push((after.runTimeNs - was.runTimeNs) / PER_BLOCK);
        }
      }
    writeFileSync('/proc/sys/kernel/bpf_stats_enabled', '0');
    const median = (xs: number[]): number => percentiles(xs, [50])[0] ?? NaN;
    const none = configs[0]!;
    const p = (xs: number[], q: number): number => percentiles(xs, [q])[0] ?? NaN;
    const byConfig = Object.fromEntries(
      measured.map((c) => {
        const programs = [...blocks.get(c.name)!].map(([name, b]) => ({ name, runs: median(b.runs), ns: median(b.ns) }));
        return [
          c.name,
          {
            p50Us: p(c.tracked.wall, 50) / 1e3,
            addedP50Us: (p(c.tracked.wall, 50) - p(none.tracked.wall, 50)) / 1e3,
            addedP90Us: (p(c.tracked.wall, 90) - p(none.tracked.wall, 90)) / 1e3,
            cpuP50Us: p(c.tracked.cpu, 50) / 1e3,
            addedCpuP50Us: (p(c.tracked.cpu, 50) - p(none.tracked.cpu, 50)) / 1e3,
            untrackedAddedP50Us: (p(c.untracked.wall, 50) - p(none.untracked.wall, 50)) / 1e3,
            untrackedAddedCpuP50Us: (p(c.untracked.cpu, 50) - p(none.untracked.cpu, 50)) / 1e3,
            programNsPerConnection: programs.reduce((n, q) => n + q.ns, 0),
            programs: Object.fromEntries(
              programs.map((q) => [
                q.name,
                { runsPerConnection: round(q.runs), nsPerRun: q.runs > 0 ? round(q.ns / q.runs) : null, nsPerConnection: round(q.ns) },
              ]),
            ),
          },
        ];
      }),
    );
    return {
      connectsPerConfigAndSide: BLOCKS * PER_BLOCK,
      detachedP50Us: p(none.tracked.wall, 50) / 1e3,
      detachedCpuP50Us: p(none.tracked.cpu, 50) / 1e3,
      configs: byConfig,
    };
  } finally {
    writeFileSync('/proc/sys/kernel/bpf_stats_enabled', statsWas);
    for (const fn of cleanup.reverse()) await fn();
    up.server.close();
    tree.parent.remove();
  }
}

/**
 * Check throughput with kernel telemetry on vs off: two `verdict serve` processes (workers 1, decision cache
 * off, pinned to CPU 0; h2load on CPU 1), the same framed Check, CHECK_ROUNDS interleaved rounds; the figure
 * is the server's CPU per Check (median round). The "on" server attaches telemetry to a cgroup of its own
 * and its allow index observes every decision: all that telemetry adds to the Check path.
 */
async function checkCost() {
  const tree = createCgroupTree('ktcheck', []);
  const root = packageRoot();
  const common = ['--set', 'server.workers=1', '--set', 'cache.enabled=false'];
  const on = await spawnVerdict(root, [
    ...common,
    '--set',
    'kernelTelemetry.enabled=true',
    '--set',
    'kernelTelemetry.required=true',
    '--set',
    `kernelTelemetry.cgroupPath=${tree.parent.path}`,
    '--set',
    `kernelTelemetry.pinPath=/sys/fs/bpf/verdict-telemetry-bench-${process.pid}`,
  ]);
  const off = await spawnVerdict(root, common);
  const dataFile = framedFixture();
  try {
    for (const v of [on, off]) pinToCpu(v.pid, 0);
    const round = async (v: VerdictProcess): Promise<{ cpuUs: number; rps: number }> => {
      const before = processCpuMicros(v.pid);
      const r = await runH2load({
        url: `http://127.0.0.1:${v.grpcPort}/${AUTHORIZATION_SERVICE}/Check`,
        dataFile,
        durationS: CHECK_SECONDS,
        clients: 4,
        streams: 13,
        cpu: 1,
      });
      if (r.succeeded === 0) throw new Error('h2load: no Check succeeded');
      return { cpuUs: (processCpuMicros(v.pid) - before) / r.succeeded, rps: r.rps };
    };
    for (const v of [on, off]) await round(v); // warm-up (JIT, wasm tier-up)
    const samples = { on: [] as { cpuUs: number; rps: number }[], off: [] as { cpuUs: number; rps: number }[] };
    for (let i = 0; i < CHECK_ROUNDS; i++)
      for (const [k, v] of (i % 2
        ? [
            ['off', off],
            ['on', on],
          ]
        : [
            ['on', on],
            ['off', off],
          ]) as ['on' | 'off', VerdictProcess][])
        samples[k].push(await round(v));
    const median = (xs: number[]): number => percentiles(xs, [50])[0] ?? NaN;
    const sum = (xs: { cpuUs: number; rps: number }[]) => ({
      cpuUsPerCheck: median(xs.map((x) => x.cpuUs)),
      rps: median(xs.map((x) => x.rps)),
    });
    return { rounds: CHECK_ROUNDS, seconds: CHECK_SECONDS, on: sum(samples.on), off: sum(samples.off) };
  } finally {
    await on.stop();
    await off.stop();
    tree.parent.remove();
  }
}

async function scrapeCost() {
  const names = Array.from({ length: 10 }, (_, i) => `w${i}`);
  const tree = createCgroupTree('ktscrape', names);
  const metrics = new Metrics({ defaultMetrics: false });
  const telemetry = startKernelTelemetry(
    telemetrySettings(tree.parent.path, {
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
