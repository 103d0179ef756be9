/**
 * Shadow rollout overhead: Check p99 and server CPU per Check with policy.shadow evaluating every request
 * (sampleRate 1, a candidate as costly as the active bundle: the same default bundle) vs without, side by
 * side in one run, over gRPC with ghz. Goal: p99 with shadow ≤ 1.3× without. Also how many evaluations the
 * CPU budget let through and how many it dropped.
 * Run: npm run build && node dist/loadtest/bench-shadow.js
 */
import type { RunningVerdict } from '../src/main';
import { defaultBundlePath } from '../src/package-root';
import { benchRequest, ghz, startBenchVerdict, type GhzResult } from './bench-cache';
import { runAsScript } from './lib/run-as-script';
import { printRows } from './lib/stats';

const ROUNDS = 2;
const CALLS = 20_000;

interface Side extends GhzResult {
  cpuUsPerCall: number;
}

async function measure(v: RunningVerdict): Promise<Side> {
  const cpu0 = process.cpuUsage();
  const r = await ghz(v.grpcPort, benchRequest(), CALLS, 16);
  await v.shadow?.evaluator.idle();
  const cpu = process.cpuUsage(cpu0);
  return { ...r, cpuUsPerCall: (cpu.user + cpu.system) / r.count };
}

async function outcomes(v: RunningVerdict): Promise<Record<string, number>> {
  const m = await v.metrics.registry.getSingleMetric('verdict_shadow_evaluations_total')?.get();
  return Object.fromEntries((m?.values ?? []).map((x) => [String(x.labels.outcome), x.value]));
}

export async function run(): Promise<Record<string, unknown>> {
  const common = ['cache.enabled=false', 'server.workers=1'];
  const off = await startBenchVerdict(common);
  const on = await startBenchVerdict([
    ...common,
    'policy.shadow.sampleRate=1',
    'policy.shadow.maxCPUShare=0.5',
    'policy.shadow.bundles.source.type=file',
    `policy.shadow.bundles.source.path=${defaultBundlePath()}`,
  ]);
  const without: Side[] = [];
  const withShadow: Side[] = [];
  try {
    await ghz(off.grpcPort, benchRequest(), 2000, 16); // warm-up both
    await ghz(on.grpcPort, benchRequest(), 2000, 16);
    for (let i = 0; i < ROUNDS; i++) {
      without.push(await measure(off));
      withShadow.push(await measure(on));
    }
    const mean = (xs: Side[], k: keyof Side): number => xs.reduce((a, x) => a + x[k], 0) / xs.length;
    const results = {
      without: { p99Ms: mean(without, 'p99Ms'), rps: mean(without, 'rps'), cpuUsPerCall: mean(without, 'cpuUsPerCall') },
      withShadow: { p99Ms: mean(withShadow, 'p99Ms'), rps: mean(withShadow, 'rps'), cpuUsPerCall: mean(withShadow, 'cpuUsPerCall') },
      shadowOutcomes: await outcomes(on),
    };
    const ratio = {
      p99: +(results.withShadow.p99Ms / results.without.p99Ms).toFixed(2),
      rps: +(results.withShadow.rps / results.without.rps).toFixed(2),
      cpuPerCall: +(results.withShadow.cpuUsPerCall / results.without.cpuUsPerCall).toFixed(2),
    };
    printRows([
      ['shadow at 100% sampling', 'without', 'with', 'ratio'],
      ['Check p99 (ms)', results.without.p99Ms.toFixed(2), results.withShadow.p99Ms.toFixed(2), `${ratio.p99}×`],
      ['Check/s', results.without.rps.toFixed(0), results.withShadow.rps.toFixed(0), `${ratio.rps}×`],
      ['process CPU µs/Check', results.without.cpuUsPerCall.toFixed(1), results.withShadow.cpuUsPerCall.toFixed(1), `${ratio.cpuPerCall}×`],
    ]);
    process.stdout.write(`shadow outcomes: ${JSON.stringify(results.shadowOutcomes)} (goal: p99 ratio ≤ 1.3)\n`);
    return { ...results, ratio };
  } finally {
    await off.stop();
    await on.stop();
  }
}

runAsScript(module, run);
