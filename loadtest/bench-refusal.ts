import { readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ociSourceSets, pushBundle, startRegistry, type Registry } from '../test/helpers/bundle-oci';
import { BundleForge, pack } from '../test/helpers/hostile-bundles';
import { httpCheckRequest, tempDir } from '../test/helpers/verdict-harness';
import { packageRoot } from '../src/package-root';
import { AUTHORIZATION_SERVICE } from '../src/server/envoy-protos';
import { writeFramedCheckRequest } from './lib/framed-check-request';
import { runH2load, type H2loadResult } from './lib/h2load';
import type { GcPause, LoopBlock } from './lib/loop-blocks-preload';
import { processCpuMicros, threadCpuAndNice, threadCpuMicros } from './lib/proc-cpu';
import { runAsScript } from './lib/run-as-script';
import { spawnVerdict, type VerdictProcess } from './lib/spawn-verdict';
import { percentiles, printTable, round } from './lib/stats';

/**
 * A 50 MB-data bundle refused under load. A tampered bundle (valid JWT, data.json replaced by ~50 MB of
 * JSON) is published to the watched file source (BENCH_REFUSAL_SOURCE=oci: to a tag of a real distribution
 * registry, the OCI source) of a verdict *process* while h2load (its own process, on
 * the other core) sends Checks at a fixed rate; the bundle is read, untarred, its files hashed and refused
 * (ERR_BUNDLE_SIGNATURE). Two windows of equal length side by side in one run: A without a refusal, B while
 * refusals run back to back. The worst event-loop block is the server's own (prom-client's
 * monitorEventLoopDelay at 1 ms resolution, verdict_nodejs_eventloop_lag_max_seconds, which resets at each
 * scrape: one scrape opens a window, one closes it); p99 is over the Checks that started inside the window.
 * Beside them, per 1,000 Checks, the CPU time of the server's main thread (from /proc: what the event loop
 * itself spent, the figure that survives a busy machine) and its major GCs (verdict_nodejs_gc_duration_seconds).
 * Goal: worst block in B ≤ 10 ms; p99 B/A ≤ 1.2. BENCH_REFUSAL_ROUNDS rounds of A then B, pooled (0: only
 * the calibration: BENCH_REFUSAL_UNLOADED refusals with no Check traffic, each followed by an idle window of
 * its length, so that a refusal's main-thread CPU, major GCs and worst block stand beside the idle server's
 * over the same time on the same machine). BENCH_REFUSAL_BLOCKS=1 preloads loop-blocks-preload.ts into every
 * server and splits each window's worst block into on-CPU, run-queue wait and sleep (what the event loop did
 * vs what the machine's other threads did to it).
 * BENCH_REFUSAL_BEFORE=<built checkout> adds a server of that build, and BENCH_REFUSAL_VARIANT_NODE_ARGS (node
 * flags) or BENCH_REFUSAL_VARIANT_SETS (verdict `key=value` settings, space-separated) one of this build with them; all run at once and their windows interleave round by round.
 * BENCH_REFUSAL_NODE_ARGS passes flags to every server. BENCH_REFUSAL_THREADS=1 samples every thread of
 * each server (/proc/<pid>/task, every 5 ms) during the calibration refusals and says which threads their
 * CPU ran on: the event loop, the bundle worker (the thread at nice 10), V8's platform threads (GC helpers,
 * concurrent marking, compilation) and Node's helpers, the libuv thread pool (file reads, zlib inflate).
 */
const RATE = Number(process.env.BENCH_REFUSAL_RPS ?? 2000);
const REFUSALS = Number(process.env.BENCH_REFUSALS ?? 2);
/** Refusals with no Check traffic, at start: their mean time sets the windows' length. */
const UNLOADED_REFUSALS = Number(process.env.BENCH_REFUSAL_UNLOADED ?? 3);
/** Quiet and refusing windows per server, interleaved across servers round by round. */
const ROUNDS = Number(process.env.BENCH_REFUSAL_ROUNDS ?? 2);
const DATA_BYTES = 50 * 1024 * 1024;
const CLIENTS = 4;
/** h2load's core; the server is left unpinned so its hashing thread can use the other one. */
const CLIENT_CPU = 1;
const LEAD_IN_MS = 1500;
/** h2load runs this many times the unloaded refusal time during the refusals: on a busy 2-core machine they take 2–4× longer. */
const LOAD_FACTOR = Number(process.env.BENCH_REFUSAL_LOAD_FACTOR ?? 4);
/** Extra node flags for the server, e.g. BENCH_REFUSAL_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/p" to find what blocks. */
const NODE_ARGS = (process.env.BENCH_REFUSAL_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
const VARIANT_NODE_ARGS = (process.env.BENCH_REFUSAL_VARIANT_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
const VARIANT_SETS = (process.env.BENCH_REFUSAL_VARIANT_SETS ?? '').split(' ').filter((a) => a !== '');
/** Where the tampered bundles come from: `file` (a watched file, the default) or `oci` (a real distribution registry). */
const SOURCE = process.env.BENCH_REFUSAL_SOURCE ?? 'file';
if (SOURCE !== 'file' && SOURCE !== 'oci') throw new Error(`BENCH_REFUSAL_SOURCE is file or oci, not ${SOURCE}`);
const THREADS = process.env.BENCH_REFUSAL_THREADS === '1';
/** Where each server's loop-blocks-preload writes its blocks (BENCH_REFUSAL_BLOCKS=1), else null. */
const BLOCKS_DIR = process.env.BENCH_REFUSAL_BLOCKS === '1' ? tempDir('verdict-bench-blocks-') : null;
// The servers inherit this process's environment: that is how the preload learns where to write.
if (BLOCKS_DIR !== null) process.env.LOOP_BLOCKS_DIR = BLOCKS_DIR;

interface WindowResult {
  startMs: number;
  endMs: number;
  checks: number;
  failed: number;
  p50Ms: number;
  p99Ms: number;
  maxLoopBlockMs: number;
  mainCpuMs: number;
  majorGcs: number;
  majorGcMs: number;
  durationMs: number;
  /** Every Check started in the window (ms), for pooled percentiles. */
  latencies: number[];
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
  tampered: Buffer[];
  requestFile: string;
  /** The distribution registry the servers pull from (BENCH_REFUSAL_SOURCE=oci), else null: watched files. */
  registry: Registry | null;
}

/** Progress on stderr: the run takes minutes. */
const step = (what: string): void => void process.stderr.write(`${new Date().toISOString()} refusal bench: ${what}\n`);

async function setup(): Promise<Setup> {
  const forge = await BundleForge.create('BENCH');
  // Two tampered variants, alternated: the file source skips a rewrite of identical bytes.
  const signed = forge.sign(forge.goodFiles);
  step('building two tampered 50 MiB bundles');
  const tampered = [1, 2].map((v) => pack(new Map([...signed, ['data.json', bigData(v)]])));
  const registry = SOURCE === 'oci' ? await startRegistry() : null;
  return { forge, tampered, requestFile: writeFramedCheckRequest(httpCheckRequest({ path: '/probe' })), registry };
}

/** One server under test, with its own bundle source (a watched file, or a repository of the registry). */
interface Server {
  label: string;
  verdict: VerdictProcess;
  publish(bytes: Buffer): Promise<void>;
  codes: string[];
  unloadedRefusalMs: number;
  /** The calibration, with no Check traffic: each refusal's window, each followed by an idle one as long. */
  unloaded: { refusing: UnloadedWindow[]; idle: UnloadedWindow[] };
  windows: { quiet: WindowResult[]; refusing: WindowResult[] };
}

/** One window of the calibration (epoch ms), with the server's counters over it. */
interface UnloadedWindow {
  startMs: number;
  endMs: number;
  mainCpuMs: number;
  majorGcs: number;
  majorGcMs: number;
  maxLoopBlockMs: number;
  /** With BENCH_REFUSAL_THREADS=1: CPU ms per kind of thread over the window. */
  threadCpuMs?: Record<string, number>;
}

export async function run(): Promise<Record<string, unknown>> {
  const s = await setup();
  const roots: [string, string, string[], string[]][] = [['after', packageRoot(), NODE_ARGS, []]];
  if (process.env.BENCH_REFUSAL_BEFORE) roots.unshift(['before', process.env.BENCH_REFUSAL_BEFORE, NODE_ARGS, []]);
  if (VARIANT_NODE_ARGS.length > 0 || VARIANT_SETS.length > 0)
    roots.push([
      `after ${[...VARIANT_NODE_ARGS, ...VARIANT_SETS].join(' ')}`,
      packageRoot(),
      [...NODE_ARGS, ...VARIANT_NODE_ARGS],
      VARIANT_SETS,
    ]);
  const results: Record<string, unknown> = {
    rate: RATE,
    rounds: ROUNDS,
    source: SOURCE,
    dataMiB: DATA_BYTES / 2 ** 20,
    compressedMiB: round((s.tampered[0] as Buffer).length / 2 ** 20),
  };
  // Every server runs from the start (an idle one costs nothing) so that their windows interleave:
  // round by round, each server's quiet window then its refusals, so machine noise falls on all alike.
  const servers: Server[] = [];
  try {
    for (const [label, root, args, sets] of roots) servers.push(await startServer(s, label, root, args, sets));
    for (let r = 0; r < ROUNDS; r++) {
      for (const srv of servers) await measureRound(s, srv, r);
    }
  } finally {
    for (const srv of servers) await srv.verdict.stop();
    await s.registry?.stop();
  }
  // After the servers stopped: their block logs are written when they exit.
  for (const srv of servers) results[srv.label] = summarize(srv);
  return results;
}

/** How a server under test gets its bundles: its source's config and how a bundle is published to it. */
interface Delivery {
  sets: string[];
  publish(bytes: Buffer): Promise<void>;
}

/** A watched file, published by an atomic rename. */
function fileDelivery(): Delivery {
  const live = join(tempDir('verdict-bench-refusal-'), 'bundle.tar.gz');
  let n = 0;
  return {
    sets: ['bundles.source.type=file', `bundles.source.path=${live}`, 'bundles.source.debounceMs=1'],
    publish: async (bytes) => {
      writeFileSync(`${live}.${++n}.tmp`, bytes);
      renameSync(`${live}.${n}.tmp`, live);
    },
  };
}

/**
 * A tag of the run's registry (one repository per server), moved by pushing the bundle as its layer. Polled
 * every 0.5–1 s: each poll is an HTTP request on the event loop, and at tens of ms apart their garbage
 * alone brings on major GCs in every window.
 */
function ociDelivery(registry: Registry, repository: string): Delivery {
  return {
    sets: ociSourceSets(registry.url, repository, 500, 1000),
    publish: async (bytes) => void (await pushBundle(registry.url, repository, 'latest', bytes)),
  };
}

async function startServer(s: Setup, label: string, root: string, nodeArgs: string[], variantSets: string[]): Promise<Server> {
  const delivery = s.registry === null ? fileDelivery() : ociDelivery(s.registry, `bench/${label.replace(/[^a-z0-9]+/g, '-')}`);
  const publish = delivery.publish;
  await publish(s.forge.good());
  const sets = [
    'server.workers=1',
    'log.level=info',
    ...delivery.sets,
    'bundles.loadTimeoutMs=120000',
    // Blocks of a few ms must show in the lag maximum (the default samples every 10 ms).
    'server.http.eventLoopResolutionMs=1',
    ...s.forge.trustSets(),
    ...variantSets,
  ];
  const preload = BLOCKS_DIR === null ? [] : ['--require', join(__dirname, 'lib', 'loop-blocks-preload.js')];
  const verdict = await spawnVerdict(
    root,
    sets.flatMap((x) => ['--set', x]),
    [...nodeArgs, ...preload],
  );
  const srv: Server = {
    label,
    verdict,
    publish,
    codes: [],
    unloadedRefusalMs: 0,
    unloaded: { refusing: [], idle: [] },
    windows: { quiet: [], refusing: [] },
  };
  // Calibration, unloaded: how long a refusal takes sets the length of the windows. With no Check traffic,
  // what the event loop spends on a refusal is measured alone — its main-thread CPU, major GCs and worst
  // block — beside an idle window as long right after it (the machine's noise floor, same server, same minute).
  step(`${label}: ${UNLOADED_REFUSALS} calibration refusals, each followed by an idle window`);
  // The first scrape is cold (metrics initialised on first use), and the part of it after the lag histogram
  // resets would fall in the first window.
  await scrape(verdict);
  for (let i = 0; i < UNLOADED_REFUSALS; i++) {
    const refusing = await unloadedWindow(verdict, async () => srv.codes.push(await refuseOne(srv, s.tampered[(i + 1) % 2] as Buffer)));
    srv.unloaded.refusing.push(refusing);
    srv.unloaded.idle.push(await unloadedWindow(verdict, () => sleep(refusing.endMs - refusing.startMs)));
  }
  const refusals = srv.unloaded.refusing;
  srv.unloadedRefusalMs = Math.round(refusals.reduce((n, w) => n + w.endMs - w.startMs, 0) / Math.max(1, refusals.length));
  await load(verdict, s.requestFile, 500, async () => sleep(500)); // warm-up (JIT, wasm tier-up)
  return srv;
}

/** One calibration window: `during` between two scrapes (the lag maximum resets at each). */
async function unloadedWindow(verdict: VerdictProcess, during: () => Promise<unknown>): Promise<UnloadedWindow> {
  const c0 = await scrape(verdict);
  const threads = THREADS ? sampleThreads(verdict.pid) : null;
  const startMs = Date.now();
  await during();
  const endMs = Date.now();
  const threadCpuMs = threads?.stop();
  const c1 = await scrape(verdict);
  return {
    startMs,
    endMs,
    mainCpuMs: c1.mainCpuMs - c0.mainCpuMs,
    majorGcs: c1.majorGcs - c0.majorGcs,
    majorGcMs: c1.majorGcMs - c0.majorGcMs,
    maxLoopBlockMs: c1.loopMaxMs,
    ...(threadCpuMs === undefined ? {} : { threadCpuMs }),
  };
}

/** Node starts V8's platform threads (4 by default) and two helpers of its own before any JS runs. */
const STARTUP_THREADS = 6;

/**
 * Every thread of a server, sampled every 5 ms until stop(): CPU ms per kind of thread. The bundle worker is
 * the thread seen at nice 10 (it renices itself); the STARTUP_THREADS lowest thread ids after the main
 * thread's are V8's platform and Node's helper threads (made before the event loop, so numbered first);
 * any other thread is the libuv pool's (started at the first file read, before any bundle work). CPU of
 * threads that ended since their last sample (the worker's last few ms) is the process's total less the
 * threads seen: "ended".
 */
function sampleThreads(pid: number): { stop(): Record<string, number> } {
  const seen = new Map<number, { first: number; last: number; nice: number }>();
  const startup = new Set(
    readdirSync(`/proc/${pid}/task`)
      .map(Number)
      .filter((t) => t !== pid)
      .sort((a, b) => a - b)
      .slice(0, STARTUP_THREADS),
  );
  const total0 = processCpuMicros(pid) / 1000;
  const sample = (): void => {
    for (const tid of readdirSync(`/proc/${pid}/task`).map(Number)) {
      const s = threadCpuAndNice(pid, tid);
      if (s === null) continue;
      const cpu = s.cpuMicros / 1000;
      const e = seen.get(tid);
      if (e === undefined) seen.set(tid, { first: cpu, last: cpu, nice: s.nice });
      else Object.assign(e, { last: cpu, nice: Math.max(e.nice, s.nice) });
    }
  };
  const existed = new Set(readdirSync(`/proc/${pid}/task`).map(Number));
  sample();
  const timer = setInterval(sample, 5);
  return {
    stop: () => {
      clearInterval(timer);
      sample();
      const out: Record<string, number> = {
        'event loop': 0,
        'bundle worker (nice 10)': 0,
        'V8 platform + node helpers': 0,
        'libuv pool': 0,
      };
      let known = 0;
      for (const [tid, e] of seen) {
        // A thread first seen during the window ran from 0 ms.
        const ms = e.last - (existed.has(tid) ? e.first : 0);
        known += ms;
        const kind =
          tid === pid
            ? 'event loop'
            : e.nice >= 10
              ? 'bundle worker (nice 10)'
              : startup.has(tid)
                ? 'V8 platform + node helpers'
                : 'libuv pool';
        out[kind] = (out[kind] ?? 0) + ms;
      }
      out.ended = Math.max(0, Math.round(processCpuMicros(pid) / 1000 - total0 - known));
      return out;
    },
  };
}

/** Per window of one kind: means of the counters, the worst block, and (with the preload) what it was made of. */
function unloadedSummary(ws: UnloadedWindow[], blocks: LoopBlocks | null): Record<string, unknown> {
  const mean = (f: (w: UnloadedWindow) => number): number => round(ws.reduce((n, w) => n + f(w), 0) / Math.max(1, ws.length));
  const summary: Record<string, unknown> = {
    windows: ws.length,
    meanMs: mean((w) => w.endMs - w.startMs),
    mainCpuMs: mean((w) => w.mainCpuMs),
    majorGcs: mean((w) => w.majorGcs),
    majorGcMs: mean((w) => w.majorGcMs),
    maxLoopBlockMs: round(Math.max(...ws.map((w) => w.maxLoopBlockMs))),
  };
  const kinds = [...new Set(ws.flatMap((w) => Object.keys(w.threadCpuMs ?? {})))];
  if (kinds.length > 0) summary.threadCpuMs = Object.fromEntries(kinds.map((k) => [k, mean((w) => w.threadCpuMs?.[k] ?? 0)]));
  return blocks === null ? summary : { ...summary, ...blockSummary(ws, blocks) };
}

/** What the event-loop blocks inside these spans were made of (the preload's record). */
function blockSummary(spans: { startMs: number; endMs: number }[], blocks: LoopBlocks): Record<string, unknown> {
  const inside = <T extends { atMs: number }>(xs: T[]): T[] =>
    xs.filter((x) => spans.some((w) => x.atMs >= w.startMs && x.atMs <= w.endMs));
  const mine = inside(blocks.blocks);
  const split = (b: LoopBlock | undefined): Record<string, number> | null =>
    b === undefined
      ? null
      : { gapMs: b.gapMs, cpuMs: b.cpuMs, waitMs: b.waitMs, sleptMs: round(Math.max(0, b.gapMs - b.cpuMs - b.waitMs)) };
  const worst = (key: 'gapMs' | 'cpuMs', of = mine): LoopBlock | undefined => [...of].sort((a, b) => b[key] - a[key])[0];
  const gcs = inside(blocks.gcs);
  const majors = gcs.filter((g) => g.kind === 4);
  // A block that overlaps a GC pause (over 1 ms) is at least partly the collector's, not a step of the code.
  const withGc = (b: LoopBlock): boolean => gcs.some((g) => g.atMs <= b.atMs + b.gapMs + 1 && g.atMs + g.ms >= b.atMs - 1);
  return {
    blocksOver4Ms: mine.length,
    worstBlock: split(worst('gapMs')),
    mostOnCpuBlock: split(worst('cpuMs')),
    mostOnCpuBlockWithoutGc: split(
      worst(
        'cpuMs',
        mine.filter((b) => !withGc(b)),
      ),
    ),
    longestMajorGcMs: majors.length === 0 ? 0 : Math.max(...majors.map((g) => g.ms)),
  };
}

interface LoopBlocks {
  blocks: LoopBlock[];
  gcs: GcPause[];
}

/** A stopped server's block log (loop-blocks-preload.ts), or null when the preload was off. */
function readBlocks(pid: number): LoopBlocks | null {
  return BLOCKS_DIR === null ? null : (JSON.parse(readFileSync(join(BLOCKS_DIR, `${pid}.json`), 'utf8')) as LoopBlocks);
}

async function measureRound(s: Setup, srv: Server, r: number): Promise<void> {
  // The quiet window first: right after a refusal the server still collects its garbage, which is the
  // refusal's cost, not the baseline's. It lasts as long as the refusals took unloaded.
  const quietMs = REFUSALS * srv.unloadedRefusalMs;
  step(`${srv.label} round ${r + 1}: ${quietMs} ms without a refusal`);
  srv.windows.quiet.push(await load(srv.verdict, s.requestFile, quietMs, () => sleep(quietMs)));
  step(`${srv.label} round ${r + 1}: ${REFUSALS} refusals under load`);
  const refuseAll = async (): Promise<void> => {
    for (let i = 0; i < REFUSALS; i++) srv.codes.push(await refuseOne(srv, s.tampered[i % 2] as Buffer));
  };
  // Refusals under load take longer than unloaded: h2load runs LOAD_FACTOR times as long.
  srv.windows.refusing.push(await load(srv.verdict, s.requestFile, LOAD_FACTOR * quietMs, refuseAll));
}

/** Windows of one kind pooled: p99 over all their Checks, the worst block, main-thread CPU and major GCs per 1,000 Checks. */
function pool(ws: WindowResult[]): Record<string, number> {
  const checks = ws.reduce((n, w) => n + w.checks, 0);
  const [p50, p99] = percentiles(
    ws.flatMap((w) => w.latencies),
    [50, 99],
  );
  const per1k = (f: (w: WindowResult) => number): number => round((1000 * ws.reduce((n, w) => n + f(w), 0)) / checks);
  return {
    checks,
    p50Ms: round(p50 ?? NaN),
    p99Ms: round(p99 ?? NaN),
    maxLoopBlockMs: round(Math.max(...ws.map((w) => w.maxLoopBlockMs))),
    mainCpuMsPer1kChecks: per1k((w) => w.mainCpuMs),
    majorGcMsPer1kChecks: per1k((w) => w.majorGcMs),
    majorGcsPer1kChecks: per1k((w) => w.majorGcs),
  };
}

function summarize(srv: Server): Record<string, unknown> {
  const blocks = readBlocks(srv.verdict.pid);
  const unloaded = { refusing: unloadedSummary(srv.unloaded.refusing, blocks), idle: unloadedSummary(srv.unloaded.idle, blocks) };
  console.log(`[${srv.label}] unloaded (no Checks), per window: refusing ${JSON.stringify(unloaded.refusing)}`);
  console.log(`[${srv.label}] unloaded (no Checks), per window: idle ${JSON.stringify(unloaded.idle)}`);
  if (ROUNDS === 0) return { unloadedRefusalMs: srv.unloadedRefusalMs, unloaded, refusalCodes: srv.codes };
  const rows = (ws: WindowResult[], name: string): Record<string, unknown>[] =>
    ws.map((w, i) => ({
      window: `${name} #${i + 1}`,
      ...Object.fromEntries(Object.entries(w).filter(([k]) => k !== 'latencies' && k !== 'startMs' && k !== 'endMs')),
    }));
  printTable(`[${srv.label}] Check at ${RATE}/s (h2load) while a bundle with ${DATA_BYTES / 2 ** 20} MiB of data.json is refused`, [
    ...rows(srv.windows.quiet, 'A: no refusal'),
    ...rows(srv.windows.refusing, `B: ${REFUSALS} refusals`),
  ]);
  const quiet = pool(srv.windows.quiet);
  const refusing = pool(srv.windows.refusing);
  const ratio = (k: string): number => round((refusing[k] as number) / (quiet[k] as number));
  const p99Ratio = ratio('p99Ms');
  const mainCpuRatio = ratio('mainCpuMsPer1kChecks');
  const goalMet = refusing.maxLoopBlockMs! <= 10 && p99Ratio <= 1.2 && srv.codes.every((c) => c === 'ERR_BUNDLE_SIGNATURE');
  console.log(
    `[${srv.label}] pooled over ${ROUNDS} rounds: loop block B/A ${refusing.maxLoopBlockMs}/${quiet.maxLoopBlockMs} ms (goal B ≤ 10 ms); ` +
      `p99 B/A ${p99Ratio} (goal ≤ 1.2); main-thread CPU per Check B/A ${mainCpuRatio}; ` +
      `major GC ms per 1k Checks B/A ${refusing.majorGcMsPer1kChecks}/${quiet.majorGcMsPer1kChecks}; ` +
      `unloaded refusal ${srv.unloadedRefusalMs} ms; codes: ${srv.codes.join(', ')}`,
  );
  // With the preload: the loaded windows' blocks split too (on-CPU vs waiting for a core, and GC overlap).
  const loadedBlocks =
    blocks === null ? null : { noRefusal: blockSummary(srv.windows.quiet, blocks), refusing: blockSummary(srv.windows.refusing, blocks) };
  if (loadedBlocks !== null) {
    console.log(`[${srv.label}] under load, per kind of window: no refusal ${JSON.stringify(loadedBlocks.noRefusal)}`);
    console.log(`[${srv.label}] under load, per kind of window: refusing ${JSON.stringify(loadedBlocks.refusing)}`);
  }
  return {
    unloadedRefusalMs: srv.unloadedRefusalMs,
    unloaded,
    refusalCodes: srv.codes,
    noRefusal: quiet,
    refusing,
    ...(loadedBlocks === null ? {} : { loadedBlocks }),
    p99Ratio,
    mainCpuRatio,
    goalMet,
  };
}

/** A refusal that is not logged within this long fails the run rather than hang it. */
const REFUSAL_DEADLINE_MS = 120_000;

/** Publishes one tampered bundle and resolves with the code of its refusal (from the server's log line). */
async function refuseOne(srv: Server, bundle: Buffer): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  let stop = (): void => undefined;
  const refused = new Promise<string>((resolve, reject) => {
    stop = srv.verdict.onLog((line) => {
      if (!line.includes('policy bundle refused')) return;
      stop();
      resolve((JSON.parse(line) as { code: string }).code);
    });
    timer = setTimeout(() => {
      stop();
      reject(new Error(`[${srv.label}] no 'policy bundle refused' log line within ${REFUSAL_DEADLINE_MS} ms of publishing`));
    }, REFUSAL_DEADLINE_MS);
  });
  try {
    await srv.publish(bundle);
    return await refused;
  } finally {
    clearTimeout(timer);
  }
}

interface Scrape {
  loopMaxMs: number;
  majorGcs: number;
  majorGcMs: number;
  /** CPU time of the server's main thread (the event loop), from /proc. */
  mainCpuMs: number;
}

/**
 * The server's worst event-loop delay since the previous scrape (the histogram resets at each), its major
 * GC counters and its main thread's CPU time (utime + stime of the thread whose id is the pid).
 */
async function scrape(verdict: VerdictProcess): Promise<Scrape> {
  const text = await (await fetch(`http://127.0.0.1:${verdict.httpPort}/metrics`)).text();
  const m = /^verdict_nodejs_eventloop_lag_max_seconds(?:\{[^}]*\})? (\S+)$/m.exec(text);
  if (!m) throw new Error('verdict_nodejs_eventloop_lag_max_seconds is missing from /metrics');
  const gc = (what: 'sum' | 'count'): number =>
    Number(new RegExp(`^verdict_nodejs_gc_duration_seconds_${what}\\{kind="major"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  const mainCpuMs = threadCpuMicros(verdict.pid, verdict.pid) / 1000;
  return { loopMaxMs: Number(m[1]) * 1000, majorGcs: gc('count'), majorGcMs: gc('sum') * 1000, mainCpuMs };
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
  const first = await scrape(verdict);
  const start = Date.now();
  await during();
  const end = Date.now();
  const last = await scrape(verdict);
  return windowOf(await h2, start, end, first, last);
}

function windowOf(r: H2loadResult, start: number, end: number, first: Scrape, last: Scrape): WindowResult {
  const inside = r.requestLog.filter((q) => q.startMs >= start && q.startMs <= end);
  const lastStart = r.requestLog.reduce((m, q) => Math.max(m, q.startMs), 0);
  if (lastStart < end) throw new Error(`h2load stopped ${end - lastStart} ms before the window closed: lengthen the run`);
  const latencies = inside.map((q) => q.ms);
  const [p50, p99] = percentiles(latencies, [50, 99]);
  return {
    startMs: start,
    endMs: end,
    checks: inside.length,
    failed: r.failed,
    p50Ms: round(p50 ?? NaN),
    p99Ms: round(p99 ?? NaN),
    maxLoopBlockMs: round(last.loopMaxMs),
    mainCpuMs: last.mainCpuMs - first.mainCpuMs,
    majorGcs: last.majorGcs - first.majorGcs,
    majorGcMs: round(last.majorGcMs - first.majorGcMs),
    durationMs: end - start,
    latencies,
  };
}

runAsScript(module, run);
