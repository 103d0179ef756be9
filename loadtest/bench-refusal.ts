import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BundleForge, pack } from '../test/helpers/hostile-bundles';
import { httpCheckRequest, tempDir } from '../test/helpers/verdict-harness';
import { packageRoot } from '../src/package-root';
import { AUTHORIZATION_SERVICE } from '../src/server/envoy-protos';
import { writeFramedCheckRequest } from './lib/framed-check-request';
import { runH2load, type H2loadResult } from './lib/h2load';
import { runAsScript } from './lib/run-as-script';
import { spawnVerdict, type VerdictProcess } from './lib/spawn-verdict';
import { percentiles, printTable, round } from './lib/stats';

/**
 * A 50 MB-data bundle refused under load. A tampered bundle (valid JWT, data.json replaced by ~50 MB of
 * JSON) is published to the watched file source of a verdict *process* while h2load (its own process, on
 * the other core) sends Checks at a fixed rate; the bundle is read, untarred, its files hashed and refused
 * (ERR_BUNDLE_SIGNATURE). Two windows of equal length side by side in one run: A without a refusal, B while
 * refusals run back to back. The worst event-loop block is the server's own (prom-client's
 * monitorEventLoopDelay at 1 ms resolution, verdict_nodejs_eventloop_lag_max_seconds, which resets at each
 * scrape: one scrape opens a window, one closes it); p99 is over the Checks that started inside the window.
 * Goal: worst block in B ≤ 10 ms; p99 B/A ≤ 1.2. BENCH_REFUSAL_BEFORE=<built checkout> adds a second
 * server (same run, same bundles) for a before/after figure; BENCH_REFUSAL_NODE_ARGS passes flags to the servers.
 */
const RATE = Number(process.env.BENCH_REFUSAL_RPS ?? 2000);
const REFUSALS = Number(process.env.BENCH_REFUSALS ?? 2);
const DATA_BYTES = 50 * 1024 * 1024;
const CLIENTS = 4;
/** h2load's core; the server is left unpinned so its hashing thread can use the other one. */
const CLIENT_CPU = 1;
const LEAD_IN_MS = 1500;
/** h2load runs this many times the unloaded refusal time during the refusals: on a busy 2-core machine they take 3–5× longer. */
const LOAD_FACTOR = Number(process.env.BENCH_REFUSAL_LOAD_FACTOR ?? 5);
/** Extra node flags for the server, e.g. BENCH_REFUSAL_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/p" to find what blocks. */
const NODE_ARGS = (process.env.BENCH_REFUSAL_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');

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

interface Setup {
  forge: BundleForge;
  live: string;
  publish(bytes: Buffer): void;
  tampered: Buffer[];
  requestFile: string;
}

/** Progress on stderr: the run takes minutes. */
const step = (what: string): void => void process.stderr.write(`${new Date().toISOString()} refusal bench: ${what}\n`);

async function setup(): Promise<Setup> {
  const forge = await BundleForge.create('BENCH');
  const live = join(tempDir('verdict-bench-refusal-'), 'bundle.tar.gz');
  let n = 0;
  const publish = (bytes: Buffer): void => {
    writeFileSync(`${live}.${++n}.tmp`, bytes);
    renameSync(`${live}.${n}.tmp`, live);
  };
  // Two tampered variants, alternated: the file source skips a rewrite of identical bytes.
  const signed = forge.sign(forge.goodFiles);
  step('building two tampered 50 MiB bundles');
  const tampered = [1, 2].map((v) => pack(new Map([...signed, ['data.json', bigData(v)]])));
  return { forge, live, publish, tampered, requestFile: writeFramedCheckRequest(httpCheckRequest({ path: '/probe' })) };
}

export async function run(): Promise<Record<string, unknown>> {
  const s = await setup();
  const roots: [string, string][] = [['after', packageRoot()]];
  if (process.env.BENCH_REFUSAL_BEFORE) roots.unshift(['before', process.env.BENCH_REFUSAL_BEFORE]);
  const results: Record<string, unknown> = {
    rate: RATE,
    dataMiB: DATA_BYTES / 2 ** 20,
    compressedMiB: round((s.tampered[0] as Buffer).length / 2 ** 20),
  };
  for (const [label, root] of roots) results[label] = await measureServer(s, label, root);
  return results;
}

async function measureServer(s: Setup, label: string, root: string): Promise<Record<string, unknown>> {
  s.publish(s.forge.good());
  const sets = [
    'server.workers=1',
    'log.level=info',
    'bundles.source.type=file',
    `bundles.source.path=${s.live}`,
    'bundles.source.debounceMs=1',
    'bundles.loadTimeoutMs=120000',
    // Blocks of a few ms must show in the lag maximum (the default samples every 10 ms).
    'server.http.eventLoopResolutionMs=1',
    ...s.forge.trustSets(),
  ];
  const verdict = await spawnVerdict(
    root,
    sets.flatMap((x) => ['--set', x]),
    NODE_ARGS,
  );
  try {
    const codes: string[] = [];
    const refuseAll = async (): Promise<void> => {
      for (let i = 0; i < REFUSALS; i++) codes.push(await refuseOne(verdict, s, s.tampered[i % 2] as Buffer));
    };
    // Calibration, unloaded: how long a refusal takes sets the length of the windows.
    step(`${label}: calibration refusal`);
    const t0 = Date.now();
    codes.push(await refuseOne(verdict, s, s.tampered[1] as Buffer));
    const unloadedRefusalMs = Date.now() - t0;
    await load(verdict, s.requestFile, 500, async () => sleep(500)); // warm-up (JIT, wasm tier-up)
    // The quiet window first: right after a refusal the server still collects its garbage, which is the
    // refusal's cost, not the baseline's. It lasts as long as the refusals took unloaded.
    const quietMs = REFUSALS * unloadedRefusalMs;
    step(`${label}: ${quietMs} ms without a refusal`);
    const quiet = await load(verdict, s.requestFile, quietMs, () => sleep(quietMs));
    step(`${label}: ${REFUSALS} refusals under load`);
    // Refusals under load take longer than unloaded: h2load runs LOAD_FACTOR times as long.
    const refusing = await load(verdict, s.requestFile, LOAD_FACTOR * quietMs, refuseAll);
    printTable(`[${label}] Check at ${RATE}/s (h2load) while a bundle with ${DATA_BYTES / 2 ** 20} MiB of data.json is refused`, [
      { window: 'A: no refusal', ...quiet },
      { window: `B: ${REFUSALS} refusals back to back`, ...refusing },
    ]);
    const p99Ratio = round(refusing.p99Ms / quiet.p99Ms);
    const goalMet = refusing.maxLoopBlockMs <= 10 && p99Ratio <= 1.2 && codes.every((c) => c === 'ERR_BUNDLE_SIGNATURE');
    console.log(
      `[${label}] server loop block B/A ${refusing.maxLoopBlockMs}/${quiet.maxLoopBlockMs} ms (goal B ≤ 10 ms); p99 B/A ${p99Ratio} (goal ≤ 1.2); unloaded refusal ${unloadedRefusalMs} ms; codes: ${codes.join(', ')}`,
    );
    return { unloadedRefusalMs, refusalCodes: codes, noRefusal: quiet, refusing, p99Ratio, goalMet };
  } finally {
    await verdict.stop();
  }
}

/** Publishes one tampered bundle and resolves with the code of its refusal (from the server's log line). */
function refuseOne(verdict: VerdictProcess, s: Setup, bundle: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const stop = verdict.onLog((line) => {
      if (!line.includes('policy bundle refused')) return;
      stop();
      resolve((JSON.parse(line) as { code: string }).code);
    });
    s.publish(bundle);
  });
}

/** The server's worst event-loop delay since the previous scrape (the histogram resets at each). */
async function scrapeLoopMaxMs(verdict: VerdictProcess): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${verdict.httpPort}/metrics`)).text();
  const m = /^verdict_nodejs_eventloop_lag_max_seconds(?:\{[^}]*\})? (\S+)$/m.exec(text);
  if (!m) throw new Error('verdict_nodejs_eventloop_lag_max_seconds is missing from /metrics');
  return Number(m[1]) * 1000;
}

/**
 * Fixed-rate Checks from h2load for a lead-in, then `during` (its window, opened and closed by a scrape),
 * then a tail; h2load runs long enough to cover a window of `maxMs`.
 */
async function load(verdict: VerdictProcess, dataFile: string, maxMs: number, during: () => Promise<unknown>): Promise<WindowResult> {
  const h2 = runH2load({
    url: `http://127.0.0.1:${verdict.grpcPort}/${AUTHORIZATION_SERVICE}/Check`,
    dataFile,
    durationS: Math.ceil((LEAD_IN_MS + maxMs + 1000) / 1000),
    clients: CLIENTS,
    streams: 32,
    rpsPerClient: RATE / CLIENTS,
    cpu: CLIENT_CPU,
  });
  await sleep(LEAD_IN_MS);
  await scrapeLoopMaxMs(verdict);
  const start = Date.now();
  await during();
  const end = Date.now();
  const maxLoopBlockMs = await scrapeLoopMaxMs(verdict);
  return windowOf(await h2, start, end, maxLoopBlockMs);
}

function windowOf(r: H2loadResult, start: number, end: number, maxLoopBlockMs: number): WindowResult {
  const inside = r.requestLog.filter((q) => q.startMs >= start && q.startMs <= end);
  const lastStart = r.requestLog.reduce((m, q) => Math.max(m, q.startMs), 0);
  if (lastStart < end) throw new Error(`h2load stopped ${end - lastStart} ms before the window closed: lengthen the run`);
  const [p50, p99] = percentiles(
    inside.map((q) => q.ms),
    [50, 99],
  );
  return {
    checks: inside.length,
    failed: r.failed,
    p50Ms: round(p50 ?? NaN),
    p99Ms: round(p99 ?? NaN),
    maxLoopBlockMs: round(maxLoopBlockMs),
    durationMs: end - start,
  };
}

runAsScript(module, run);
