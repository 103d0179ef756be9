import { once } from 'node:events';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { VerdictError } from '../src/errors';
import { BundleForge, pack } from '../test/helpers/hostile-bundles';
import { checkClient, httpCheckRequest, startTestVerdict, tempDir } from '../test/helpers/verdict-harness';
import { runAsScript } from './lib/run-as-script';
import { percentiles, printTable, round } from './lib/stats';

/**
 * A 50 MB-data bundle refused under load. A tampered bundle (valid JWT, data.json replaced by ~50 MB of
 * JSON) is published to the watched file source while Checks arrive at a fixed rate; it is read, untarred,
 * its files hashed and refused (ERR_BUNDLE_SIGNATURE). Two windows side by side in one run: A without a
 * refusal, B while refusals run back to back. Reports the worst event-loop block and Check p99 in each.
 * Goal: worst block in B ≤ 10 ms; p99 B/A ≤ 1.2.
 */
const RATE = Number(process.env.BENCH_REFUSAL_RPS ?? 2000);
const REFUSALS = Number(process.env.BENCH_REFUSALS ?? 3);
const DATA_BYTES = 50 * 1024 * 1024;
const MAX_INFLIGHT = 2000;

interface WindowResult {
  checks: number;
  failed: number;
  p50Ms: number;
  p99Ms: number;
  maxLoopBlockMs: number;
  durationMs: number;
}

/** ~50 MB of JSON that compresses like real data (ids vary, keys repeat). */
function bigData(variant: number): Buffer {
  const items: string[] = [];
  let size = 0;
  for (let i = 0; size < DATA_BYTES; i++) {
    const s = `{"id":"u${(i * 2654435761 + variant) % 4294967296}","team":"t${i % 97}","score":${(i % 1000) / 10},"tags":["a${i % 13}","b${i % 7}"]}`;
    items.push(s);
    size += s.length + 1;
  }
  return Buffer.from(`{"users":[${items.join(',')}]}`);
}

export async function run(): Promise<Record<string, unknown>> {
  const forge = await BundleForge.create('BENCH');
  const dir = tempDir('verdict-bench-refusal-');
  const live = join(dir, 'bundle.tar.gz');
  const publish = (bytes: Buffer, n: number): void => {
    writeFileSync(`${live}.${n}.tmp`, bytes);
    renameSync(`${live}.${n}.tmp`, live);
  };
  publish(forge.good(), 0);
  // Two tampered variants, alternated: the file source skips a rewrite of identical bytes.
  const signed = forge.sign(forge.goodFiles);
  const tampered = [1, 2].map((v) => pack(new Map([...signed, ['data.json', bigData(v)]])));
  const verdict = await startTestVerdict([
    'bundles.source.type=file',
    `bundles.source.path=${live}`,
    'bundles.source.debounceMs=1',
    ...forge.trustSets(),
  ]);
  const client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
  try {
    await window(client, async () => new Promise((r) => setTimeout(r, 1000))); // warm-up (tier-up, connection)
    const codes: string[] = [];
    let n = 1;
    const refusing = await window(client, async () => {
      for (let i = 0; i < REFUSALS; i++) {
        const refused = once(verdict.policy, 'rejected') as Promise<[VerdictError]>;
        publish(tampered[i % 2] as Buffer, n++);
        codes.push((await refused)[0].code);
      }
    });
    const quiet = await window(client, () => new Promise((r) => setTimeout(r, refusing.durationMs)));
    printTable(`Check at ${RATE}/s while a bundle with ${DATA_BYTES / 2 ** 20} MiB of data.json is refused`, [
      { window: 'A: no refusal', ...quiet },
      { window: `B: ${REFUSALS} refusals back to back`, ...refusing },
    ]);
    const result = {
      rate: RATE,
      dataMiB: DATA_BYTES / 2 ** 20,
      compressedMiB: round((tampered[0] as Buffer).length / 2 ** 20),
      refusalCodes: codes,
      noRefusal: quiet,
      refusing,
      p99Ratio: round(refusing.p99Ms / quiet.p99Ms),
      goalMet: refusing.maxLoopBlockMs <= 10 && refusing.p99Ms / quiet.p99Ms <= 1.2 && codes.every((c) => c === 'ERR_BUNDLE_SIGNATURE'),
    };
    console.log(
      `worst loop block B/A ${refusing.maxLoopBlockMs}/${quiet.maxLoopBlockMs} ms (goal B ≤ 10 ms); p99 B/A ${result.p99Ratio} (goal ≤ 1.2); refusals: ${codes.join(', ')}`,
    );
    return result;
  } finally {
    client.close();
    await verdict.stop();
  }
}

/** Checks at a fixed rate (open loop: sent on a timer, not when the last one answered) while `during` runs. */
async function window(client: ReturnType<typeof checkClient>, during: () => Promise<unknown>): Promise<WindowResult> {
  const latencies: number[] = [];
  let failed = 0;
  const inflight = new Set<Promise<void>>();
  const request = httpCheckRequest({ path: '/probe' });
  const one = (): void => {
    // An overloaded machine must not turn the open loop into unbounded memory: past the cap, a send is a failure.
    if (inflight.size >= MAX_INFLIGHT) return void failed++;
    const t0 = process.hrtime.bigint();
    const p = client
      .check(request)
      .then(
        (res) => {
          const reason = res.deniedResponse?.headers?.find((h) => h.header?.key === 'x-verdict-reason')?.header?.value ?? '';
          if (res.status === undefined || reason.startsWith('ERR_')) failed++;
        },
        () => void failed++,
      )
      .finally(() => {
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
        inflight.delete(p);
      });
    inflight.add(p);
  };
  const TICK_MS = 5;
  const started = Date.now();
  let sent = 0;
  const ticker = setInterval(() => {
    // Catch up on ticks a blocked loop missed, so a block shows as latency instead of as fewer requests.
    const due = Math.floor(((Date.now() - started) / 1000) * RATE);
    for (; sent < due; sent++) one();
  }, TICK_MS);
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  await during();
  const durationMs = Date.now() - started;
  clearInterval(ticker);
  loop.disable();
  await Promise.all(inflight);
  const [p50, p99] = percentiles(latencies, [50, 99]);
  return {
    checks: latencies.length,
    failed,
    p50Ms: round(p50 ?? NaN),
    p99Ms: round(p99 ?? NaN),
    maxLoopBlockMs: round(loop.max / 1e6),
    durationMs,
  };
}

runAsScript(module, run);
