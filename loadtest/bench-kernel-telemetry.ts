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
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
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
import { packageRoot } from '../src/package-root';
import { createLogger } from '../src/telemetry/logger';
import { Metrics } from '../src/telemetry/metrics';
import { startEchoServer } from '../test/helpers/bpf-envoy';
import type { TestCgroup } from '../test/helpers/bpf-kernel';
import {
  connectSweepBinary,
  createCgroupTree,
  recordingDecisionLog,
  requireTelemetryBPF,
  runSweep,
  telemetrySettings,
} from '../test/helpers/kernel-telemetry-fixtures';
import { tempDir } from '../test/helpers/verdict-harness';
import { percentiles, printRows, round } from './lib/stats';
import { runAsScript } from './lib/run-as-script';

const BLOCKS = 10;
const PER_BLOCK = 100;

export async function run(): Promise<Record<string, unknown>> {
  requireTelemetryBPF();
  const connection = await connectionCost();
  const scrape = await scrapeCost();
  const observer = observerCost();
  const result = { connection, scrape, observer };
  printRows([
    ['', 'attached', 'detached', 'added'],
    ['connect() p50 µs', f(connection.attachedP50Us), f(connection.detachedP50Us), f(connection.addedP50Us)],
    ['connect() p90 µs', f(connection.attachedP90Us), f(connection.detachedP90Us), f(connection.attachedP90Us - connection.detachedP90Us)],
    ['programs ns / connection', f(connection.programNsPerConnection), '-', '-'],
    ['fast path connect4 ns (yardstick)', f(connection.fastpathConnect4NsPerRun), '-', '-'],
    ['telemetry / fast path program', f(connection.ratioToFastpath), '-', '-'],
    [''],
    ['', 'telemetry', 'without', 'ratio'],
    [`scrape ms (${scrape.series} series)`, f(scrape.withP50Ms), f(scrape.withoutP50Ms), f(scrape.withP50Ms / scrape.withoutP50Ms)],
    ['kernel read ms (batched)', f(scrape.readP50Ms), '-', '-'],
    ['observer µs / Check', f(observer.usPerCheck), '-', '-'],
  ]);
  return result;
}

const f = (n: number | null): string => (n === null ? '-' : String(round(n)));

async function connectionCost() {
  const loaded = loadTelemetryAddon();
  if ('reason' in loaded) throw new Error(loaded.reason);
  const tree = createCgroupTree('ktbench', ['w']);
  const maps = KernelTelemetryMaps.load(loaded.addon, {
    objectPath: telemetryObjectPath(),
    maxEntries: 4096,
    pinDir: null,
    cgroupPath: null,
  });
  // The fast path's connect program rides along on the same connects: a yardstick measured under the same load.
  const fpAddon = loadAddon();
  if ('reason' in fpAddon) throw new Error(fpAddon.reason);
  const yardstick = KernelVerdictMap.load(fpAddon.addon, { objectPath: bpfObjectPath(), maxEntries: 1024, pinDir: null, cgroupPath: null });
  yardstick.setGeneration(1n);
  const up = await startEchoServer();
  const statsWas = readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim();
  const probe = await startProbe(tree.child.w!);
  try {
    const attached: number[] = [];
    const detached: number[] = [];
    writeFileSync('/proc/sys/kernel/bpf_stats_enabled', '1');
    // Interleaved blocks, so drift in machine load hits both sides alike.
    for (let block = 0; block < BLOCKS; block++) {
      maps.attach(tree.parent.path);
      yardstick.attach(tree.parent.path);
      for (let i = 0; i < PER_BLOCK; i++) attached.push(await probe.connect(up.port));
      maps.detach();
      yardstick.detach();
      for (let i = 0; i < PER_BLOCK; i++) detached.push(await probe.connect(up.port));
    }
    const stats = maps.programStats();
    const fp = yardstick.programStats().find((p) => p.name === 'connect4');
    const fastpathNs = fp && fp.runCount > 0 ? fp.runTimeNs / fp.runCount : null;
    const runNs = stats.reduce((n, p) => n + p.runTimeNs, 0);
    const [a50 = NaN, a90 = NaN] = percentiles(attached, [50, 90]);
    const [d50 = NaN, d90 = NaN] = percentiles(detached, [50, 90]);
    return {
      attachedP50Us: a50 / 1e3,
      detachedP50Us: d50 / 1e3,
      addedP50Us: (a50 - d50) / 1e3,
      attachedP90Us: a90 / 1e3,
      detachedP90Us: d90 / 1e3,
      programNsPerConnection: attached.length > 0 ? runNs / attached.length : null,
      fastpathConnect4NsPerRun: fastpathNs,
      ratioToFastpath: fastpathNs ? runNs / attached.length / fastpathNs : null,
      programs: Object.fromEntries(
        stats.map((p) => [p.name, { runs: p.runCount, nsPerRun: p.runCount > 0 ? round(p.runTimeNs / p.runCount) : null }]),
      ),
    };
  } finally {
    writeFileSync('/proc/sys/kernel/bpf_stats_enabled', statsWas);
    await probe.close();
    maps.close();
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

/** connect-probe in the cgroup, "connect" mode: times connect() to an established connection, then closes. */
async function startProbe(cgroup: TestCgroup): Promise<{ connect(port: number): Promise<number>; close(): Promise<void> }> {
  const bin = join(tempDir('verdict-probe-'), 'connect-probe');
  execFileSync('cc', ['-O2', '-o', bin, join(packageRoot(), 'loadtest', 'connect-probe.c')]);
  const child = spawn(bin, [], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const waiting: ((l: string) => void)[] = [];
  lines.on('line', (l) => waiting.shift()?.(l));
  const next = (): Promise<string> => new Promise<string>((resolve) => waiting.push(resolve));
  if ((await next()) !== 'ready') throw new Error('connect-probe did not start');
  cgroup.enter(child.pid as number);
  return {
    async connect(port) {
      const reply = next();
      child.stdin.write(`127.0.0.1 127.0.0.1 ${port} connect\n`);
      const [outcome = '', ns = '0'] = (await reply).split(' ');
      if (outcome !== 'connected') throw new Error(`connect-probe: ${outcome}`);
      return Number(ns);
    },
    close: async () => {
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGKILL');
      await gone;
    },
  };
}

runAsScript(module, run);
