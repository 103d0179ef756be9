/**
 * GC pauses under a fixed Check rate, variants side by side (docs/memory.md, "Full-GC pauses under load").
 * Every server runs at once, pinned to CPU 0 (all threads, as bench-transport pins them), h2load on CPU 1;
 * rounds interleave (order reversed every other round). Each server is started with `--trace-gc-nvp`
 * and its stdout read per window, so every GC of a window is attributed to it: full-GC (mark-compact)
 * pauses and their phases (external-string table, evacuation, …), scavenges and what they promoted.
 *
 *   node dist/loadtest/bench-gc.js [--seconds 8] [--rounds 4] [--rps 2000 (0: saturation)]
 *     [--variants echo,hit,hit-parallel-gc,uncached,uncached-parallel-gc,echo-parallel-gc,…] [--before DIR]
 *
 * A variant is a server and how it is started: `echo` (loadtest/lib/h2-echo.ts), `hit` / `uncached` (verdict,
 * cache on / off), with the start-up defaults of bin/verdict (its GLIBC_TUNABLES, NODE_OPTIONS and
 * node flags, read from the launcher itself), or with `-parallel-gc` without its `--single-threaded-gc`.
 * `--variant-flags 'name=flags'` (repeatable) adds one of those with more node flags, e.g.
 * `hit-semi8=--max-semi-space-size=8`; `--variant-set 'name=key=value …'` one with verdict settings, e.g.
 * `hit-m2000=server.gcMarkingEveryChecks=2000`. `--before DIR`: `before-hit`/`before-uncached` of a built checkout,
 * started by its own launcher.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { packageRoot } from '../src/package-root';
import { framedFixture } from './bench-transport';
import { runH2load } from './lib/h2load';
import { pinToCpu, processCpuMicros } from './lib/proc-cpu';
import { runAsScript } from './lib/run-as-script';
import { median, percentiles, printTable, round } from './lib/stats';

const SERVER_CPU = 0;
const CLIENT_CPU = 1;
const PATH = '/envoy.service.auth.v3.Authorization/Check';

interface Variant {
  name: string;
  kind: 'echo' | 'hit' | 'uncached';
  /** Checkout whose bin/verdict (or h2-echo) runs. */
  root: string;
  /** bin/verdict's node flags are kept (default) or dropped (`-parallel-gc`). */
  launcherFlags: boolean;
  extraFlags: string[];
  /** verdict settings (`--set key=value`) on top of the bench's own. */
  sets: string[];
}

interface Gc {
  kind: string;
  fields: Record<string, number>;
}

interface Window {
  checks: number;
  latenciesMs: number[];
  cpuMicros: number;
  gcs: Gc[];
}

interface Running {
  variant: Variant;
  child: ChildProcess;
  port: number;
  traceFile: string;
  windows: Window[];
}

/** bin/verdict's defaults, read from the launcher so the bench follows it: its env and its node flags. */
export function launcherDefaults(root: string): { env: Record<string, string>; flags: string[] } {
  const text = readFileSync(join(root, 'bin', 'verdict'), 'utf8');
  const env: Record<string, string> = {};
  for (const name of ['GLIBC_TUNABLES', 'NODE_OPTIONS']) {
    const m = new RegExp(`^${name}="([^"$]*)`, 'm').exec(text);
    if (m) env[name] = m[1]!;
  }
  const flags = /^\s*single\) exec node ([^"]*)"\$here/m.exec(text)?.[1]?.trim().split(/\s+/) ?? [];
  return { env, flags };
}

async function start(v: Variant, dir: string, index: number): Promise<Running> {
  const defaults = launcherDefaults(v.root);
  const traceFile = join(dir, `${index}.trace`);
  const errFile = join(dir, `${index}.err`);
  const out = openSync(traceFile, 'w');
  const err = openSync(errFile, 'w');
  const flags = [...(v.launcherFlags ? defaults.flags : []), ...v.extraFlags, '--trace-gc-nvp'];
  const script =
    v.kind === 'echo'
      ? [join(v.root, 'dist', 'loadtest', 'lib', 'h2-echo.js')]
      : [
          join(v.root, 'bin', 'verdict.js'),
          'serve',
          ...['server.grpc.port=0', 'server.http.port=0', 'server.workers=1', `cache.enabled=${v.kind === 'hit'}`, ...v.sets].flatMap(
            (s) => ['--set', s],
          ),
        ];
  const child = spawn(process.execPath, [...flags, ...script], {
    stdio: ['ignore', out, err],
    env: { ...process.env, ...defaults.env },
  });
  closeSync(out);
  closeSync(err);
  for (let i = 0; i < 600; i++) {
    await sleep(100);
    if (child.exitCode !== null) throw new Error(`${v.name} exited ${child.exitCode}:\n${readFileSync(errFile, 'utf8').slice(-2000)}`);
    const log = readFileSync(errFile, 'utf8');
    const port =
      /"port":(\d+)/.exec(readFileSync(traceFile, 'utf8'))?.[1] ??
      (log.includes('verdict serving') ? /"grpcPort":(\d+)/.exec(log)?.[1] : undefined);
    if (port !== undefined) {
      pinToCpu(child.pid!, SERVER_CPU);
      return { variant: v, child, port: Number(port), traceFile, windows: [] };
    }
  }
  child.kill('SIGKILL');
  throw new Error(`${v.name}: not serving after 60 s`);
}

/** `--trace-gc-nvp` lines: `[pid:isolate:n] T ms: pause=… gc=s|mc … name=value …`. */
export function parseTraceGcNvp(text: string): Gc[] {
  const gcs: Gc[] = [];
  for (const line of text.split('\n')) {
    const kind = / gc=(\w+)/.exec(line)?.[1];
    if (kind === undefined) continue;
    const fields: Record<string, number> = {};
    for (const m of line.matchAll(/([\w.]+)=([\d.]+)%?/g)) fields[m[1]!] = Number(m[2]);
    gcs.push({ kind, fields });
  }
  return gcs;
}

async function window(s: Running, dataFile: string, seconds: number, rps: number): Promise<Window> {
  const offset = statSync(s.traceFile).size;
  const cpu0 = processCpuMicros(s.child.pid!);
  const r = await runH2load({
    url: `http://127.0.0.1:${s.port}${PATH}`,
    dataFile,
    durationS: seconds,
    clients: 4,
    streams: rps > 0 ? 32 : 13,
    ...(rps > 0 ? { rpsPerClient: rps / 4 } : {}),
    cpu: CLIENT_CPU,
  });
  await sleep(50); // the last GC lines of the window
  const cpuMicros = processCpuMicros(s.child.pid!) - cpu0;
  const gcs = parseTraceGcNvp(readFileSync(s.traceFile).subarray(offset).toString('utf8'));
  return { checks: r.succeeded, latenciesMs: r.requestLog.map((x) => x.ms), cpuMicros, gcs };
}

const sum = (gcs: Gc[], field: string): number => gcs.reduce((t, g) => t + (g.fields[field] ?? 0), 0);
const mean = (gcs: Gc[], field: string): number => (gcs.length ? sum(gcs, field) / gcs.length : NaN);
const max = (gcs: Gc[], field: string): number => Math.max(0, ...gcs.map((g) => g.fields[field] ?? 0));

function summarize(s: Running, base: Running): Record<string, unknown> {
  const checks = s.windows.reduce((n, w) => n + w.checks, 0);
  const gcs = s.windows.flatMap((w) => w.gcs);
  const full = gcs.filter((g) => g.kind === 'mc');
  const scavenges = gcs.filter((g) => g.kind === 's');
  const [p99, p999] = percentiles(
    s.windows.flatMap((w) => w.latenciesMs),
    [99, 99.9],
  );
  const cpuPerCheck = (w: Window): number => w.cpuMicros / Math.max(1, w.checks);
  return {
    server: s.variant.name,
    Checks: checks,
    'p99 ms': p99,
    'p99.9 ms': p999,
    'p99.9 ms, median of rounds': median(s.windows.map((w) => percentiles(w.latenciesMs, [99.9])[0]!)),
    'max ms': Math.max(...s.windows.map((w) => Math.max(...w.latenciesMs))),
    'worst GC pause ms': Math.max(max(full, 'pause'), max(scavenges, 'pause')),
    'full GCs /10k': (full.length / checks) * 1e4,
    'full-GC pause mean ms': mean(full, 'pause'),
    '… external strings ms': mean(full, 'clear.external_string_table'),
    '… evacuate ms': mean(full, 'evacuate'),
    '… rest ms': mean(full, 'pause') - mean(full, 'clear.external_string_table') - mean(full, 'evacuate'),
    'promoted B/Check': sum(scavenges, 'promoted') / checks,
    'scavenge ms /1k Checks': (sum(scavenges, 'pause') / checks) * 1000,
    'CPU µs/Check': median(s.windows.map(cpuPerCheck)),
    'CPU × first (median of round ratios)': median(s.windows.map((w, i) => cpuPerCheck(w) / cpuPerCheck(base.windows[i]!))),
  };
}

export interface GcBenchOptions {
  seconds: number;
  rounds: number;
  /** Checks per second over 4 connections; 0 = saturation. */
  rps: number;
  variants: Variant[];
}

export function variantsFrom(names: string[], extra: string[], before: string | null, settings: string[] = []): Variant[] {
  const root = packageRoot();
  // A listed name is one of the built-in variants exactly; a name given flags or settings only starts with one
  // (so `hit-pool1` in --variants is refused rather than run as a plain `hit` under another name).
  const parse = (name: string, listed: boolean, extraFlags: string[], sets: string[] = []): Variant => {
    const m = /^(before-)?(echo|hit|uncached)(-parallel-gc)?/.exec(name);
    if (!m || (listed && m[0] !== name))
      throw new Error(
        `unknown variant ${name}: echo, hit, uncached, each with -parallel-gc; before-hit, before-uncached (a name of your own needs --variant-flags or --variant-set)`,
      );
    if (m[1] && before === null) throw new Error(`${name} needs --before DIR`);
    return { name, kind: m[2] as Variant['kind'], root: m[1] ? before! : root, launcherFlags: !m[3], extraFlags, sets };
  };
  return [
    ...names.map((n) => parse(n, true, [])),
    ...extra.map((e) => {
      const [name, flags = ''] = e.split(/=(.*)/s);
      return parse(name!, false, flags.split(/\s+/).filter(Boolean));
    }),
    ...settings.map((e) => {
      const [name, sets = ''] = e.split(/=(.*)/s);
      return parse(name!, false, [], sets.split(/\s+/).filter(Boolean));
    }),
  ];
}

export async function run(o: GcBenchOptions): Promise<Record<string, unknown>[]> {
  const dir = mkdtempSync(join(tmpdir(), 'verdict-bench-gc-'));
  const servers: Running[] = [];
  try {
    for (const [i, v] of o.variants.entries()) servers.push(await start(v, dir, i));
    const dataFile = framedFixture();
    for (const s of servers) await window(s, dataFile, 3, o.rps); // warm-up: JIT, wasm tier-up, cache fill
    for (let r = 0; r < o.rounds; r++)
      for (const s of r % 2 === 0 ? servers : [...servers].reverse()) s.windows.push(await window(s, dataFile, o.seconds, o.rps));
    const rows = servers.map((s) => summarize(s, servers[0]!));
    printTable(
      `GC pauses at ${o.rps > 0 ? `${o.rps} Check/s` : 'saturation'} (${o.rounds} rounds of ${o.seconds} s, interleaved; servers on CPU ${SERVER_CPU}, h2load on CPU ${CLIENT_CPU})`,
      rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'number' ? round(v, 2) : v]))),
    );
    return rows;
  } finally {
    for (const s of servers) s.child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

runAsScript(module, () => {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '8' },
      rounds: { type: 'string', default: '4' },
      rps: { type: 'string', default: '2000' },
      variants: { type: 'string', default: 'hit,hit-parallel-gc,uncached,uncached-parallel-gc,echo,echo-parallel-gc' },
      'variant-flags': { type: 'string', multiple: true, default: [] },
      'variant-set': { type: 'string', multiple: true, default: [] },
      before: { type: 'string' },
    },
  });
  return run({
    seconds: Number(values.seconds),
    rounds: Number(values.rounds),
    rps: Number(values.rps),
    variants: variantsFrom(
      values.variants.split(',').filter(Boolean),
      values['variant-flags'],
      values.before ?? null,
      values['variant-set'],
    ),
  });
});
