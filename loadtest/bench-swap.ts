import { copyFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { buildRegoBundle } from '../src/cli/bundle-build';
import { packageRoot } from '../src/package-root';
import type { BundleLoader } from '../src/policy/bundle-loader';
import { checkClient, httpCheckRequest, startTestVerdict, tempDir } from '../test/helpers/verdict-harness';
import { runAsScript } from './lib/run-as-script';

/**
 * Bundle swap under load. Two windows of equal length under the same closed-loop Check load: without
 * swaps (A) and with a swap every SWAP_EVERY_MS (B). Reports the event loop's worst block and Check p99
 * in each, side by side. Goal: a swap never blocks the loop more than 10 ms and fails no Check.
 */
const WINDOW_MS = Number(process.env.BENCH_WINDOW_MS ?? 4000);
const SWAP_EVERY_MS = 250;
const CONCURRENCY = 16;
let published = 0;

interface WindowResult {
  checks: number;
  failed: number;
  p50Ms: number;
  p99Ms: number;
  maxLoopBlockMs: number;
  swaps: number;
  /** Median over swaps of the worst loop block seen between publishing a bundle and its activation. */
  medianSwapBlockMs: number;
}

export async function run(): Promise<Record<string, unknown>> {
  const dir = tempDir('verdict-bench-swap-');
  const src = join(packageRoot(), 'policies', 'default');
  const a = join(dir, 'a.tar.gz');
  const b = join(dir, 'b.tar.gz');
  await buildRegoBundle(src, { out: a, revision: 'bench-a' });
  await buildRegoBundle(src, { out: b, revision: 'bench-b' });
  const live = join(dir, 'live.tar.gz');
  publish(a, live);
  const verdict = await startTestVerdict(['bundles.source.type=file', `bundles.source.path=${live}`, 'bundles.source.debounceMs=1']);
  const loader = verdict.bundles as BundleLoader;
  const client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
  try {
    await window(client, null, 1000, CONCURRENCY); // warm-up (wasm tier-up, connection)
    const swapping = { loader, files: [b, a], live };
    const without = await window(client, null, WINDOW_MS, CONCURRENCY);
    const withSwaps = await window(client, swapping, WINDOW_MS, CONCURRENCY);
    // Without load the loop's worst block is the swap's own (less scheduler noise from the load client).
    const idle = await window(client, null, WINDOW_MS, 0);
    const idleSwaps = await window(client, swapping, WINDOW_MS, 0);
    const rows = { 'A: load, no swap': without, 'B: load, swap every 250 ms': withSwaps, 'C: idle': idle, 'D: idle, swaps': idleSwaps };
    console.table(rows);
    const result = {
      windowMs: WINDOW_MS,
      concurrency: CONCURRENCY,
      noSwap: without,
      swap: withSwaps,
      idle,
      idleSwaps,
      p99Ratio: round(withSwaps.p99Ms / without.p99Ms),
      maxLoopBlockRatio: round(withSwaps.maxLoopBlockMs / without.maxLoopBlockMs),
      goalMet: idleSwaps.maxLoopBlockMs <= 10 && withSwaps.failed === 0,
    };
    console.log(
      `p99 ratio B/A ${result.p99Ratio}; worst loop block: load B/A ${withSwaps.maxLoopBlockMs}/${without.maxLoopBlockMs} ms, ` +
        `idle D/C ${idleSwaps.maxLoopBlockMs}/${idle.maxLoopBlockMs} ms (goal: D ≤ 10 ms); median per-swap block idle ${idleSwaps.medianSwapBlockMs} ms, under load ${withSwaps.medianSwapBlockMs} ms; failed Checks during swaps: ${withSwaps.failed}`,
    );
    return result;
  } finally {
    client.close();
    await verdict.stop();
  }
}

async function window(
  client: ReturnType<typeof checkClient>,
  swap: { loader: BundleLoader; files: string[]; live: string } | null,
  durationMs: number,
  concurrency: number,
): Promise<WindowResult> {
  const latencies: number[] = [];
  let failed = 0;
  let swaps = 0;
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const endAt = Date.now() + durationMs;
  const request = httpCheckRequest({ path: '/api/items', headers: { authorization: 'Bearer x' } });
  const worker = async (): Promise<void> => {
    while (Date.now() < endAt) {
      const t0 = process.hrtime.bigint();
      try {
        const res = await client.check(request);
        // A Check fails when verdict could not decide (an ERR_ reason), not when the policy denies.
        const reason = res.deniedResponse?.headers?.find((h) => h.header?.key === 'x-verdict-reason')?.header?.value ?? '';
        if (res.status === undefined || reason.startsWith('ERR_')) failed++;
      } catch {
        failed++;
      }
      latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  };
  const perSwap = monitorEventLoopDelay({ resolution: 1 });
  perSwap.enable();
  const swapBlocksMs: number[] = [];
  const swapper = async (): Promise<void> => {
    if (swap === null) return;
    while (Date.now() + SWAP_EVERY_MS < endAt) {
      await new Promise((r) => setTimeout(r, SWAP_EVERY_MS));
      const activated = new Promise((resolve) => swap.loader.once('activated', resolve));
      // Alternate across windows too: publishing the bundle already serving would not swap.
      publish(swap.files[published++ % swap.files.length] as string, swap.live);
      perSwap.reset();
      await activated;
      swapBlocksMs.push(perSwap.max / 1e6);
      swaps++;
    }
  };
  const swapped = swapper();
  await Promise.all([...Array.from({ length: concurrency }, worker), swapped]);
  if (concurrency === 0) await new Promise((r) => setTimeout(r, Math.max(0, endAt - Date.now())));
  loop.disable();
  latencies.sort((x, y) => x - y);
  const pct = (p: number): number => round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN);
  perSwap.disable();
  swapBlocksMs.sort((x, y) => x - y);
  const medianSwapBlockMs = round(swapBlocksMs[Math.floor(swapBlocksMs.length / 2)] ?? NaN);
  return {
    checks: latencies.length,
    failed,
    p50Ms: pct(0.5),
    p99Ms: pct(0.99),
    maxLoopBlockMs: round(loop.max / 1e6),
    swaps,
    medianSwapBlockMs,
  };
}

function publish(from: string, to: string): void {
  const tmp = `${to}.${process.pid}.tmp`;
  copyFileSync(from, tmp);
  renameSync(tmp, to);
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

runAsScript(module, run);
