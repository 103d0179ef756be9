import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { systemClock } from '../src/clock';
import { loadConfig } from '../src/config/load-config';
import { DecisionPipeline } from '../src/decision/decision-pipeline';
import { CountingDecisionLog } from '../src/decisionlog/decision-log-setup';
import { defaultBundlePath, packageRoot } from '../src/package-root';
import { PolicyStore } from '../src/policy/policy-store';
import { decodeCheckRequest } from '../src/request/check-request-decoder';
import { buildInputDocument } from '../src/request/input-document';
import { AUTHORIZATION_SERVICE, loadAuthorizationProtos } from '../src/server/envoy-protos';
import { Metrics } from '../src/telemetry/metrics';
import { runGhz } from './lib/ghz';
import { spawnVerdict } from './lib/spawn-verdict';
import { percentiles, printTable } from './lib/stats';

export interface CoreBenchOptions {
  seconds: number;
  memoryCalls: number;
  fixedRps: number;
}

const FIXTURE = join(packageRoot(), 'test', 'fixtures', 'check-request-api.json');

/** The fixture's wire bytes (encoded by proto-loader from its JSON form). */
function fixtureRequest(): { bytes: Buffer } {
  const json = JSON.parse(readFileSync(FIXTURE, 'utf8')) as { attributes: { request: { time: unknown } } };
  const ms = Date.parse(json.attributes.request.time as string);
  json.attributes.request.time = { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 };
  const check = (loadAuthorizationProtos()[AUTHORIZATION_SERVICE] as grpc.ServiceDefinition).Check as grpc.MethodDefinition<
    unknown,
    unknown
  >;
  return { bytes: check.requestSerialize(json) };
}

async function inProcess(memoryCalls: number): Promise<Record<string, unknown>> {
  const config = loadConfig({ overrides: ['log.level=silent'] });
  const metrics = new Metrics({ defaultMetrics: false });
  const policy = new PolicyStore({ entrypoint: config.policy.entrypoint, maxMemoryPages: 1024, recycleMemoryPages: 256 });
  await policy.activateFile(defaultBundlePath());
  const pipeline = new DecisionPipeline({ config, policy, metrics, clock: systemClock, decisionLog: new CountingDecisionLog(metrics) });
  const { bytes } = fixtureRequest();
  const decode = (): ReturnType<typeof decodeCheckRequest> => decodeCheckRequest(bytes, config.limits);
  const message = decode().message!;
  const engine = policy.current!.engine;
  const input = await buildInputDocument(message, config.limits);

  const time = (n: number, fn: () => unknown): Float64Array => {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const t = process.hrtime.bigint();
      fn();
      out[i] = Number(process.hrtime.bigint() - t) / 1000;
    }
    return out;
  };
  time(2000, () => engine.evaluate(input));
  const [evalP50, evalP99] = percentiles(
    time(20_000, () => engine.evaluate(input)),
    [50, 99],
  );
  const [decodeP50] = percentiles(time(20_000, decode), [50]);
  const [inputP50] = percentiles(
    time(20_000, () => buildInputDocument(message, config.limits)),
    [50],
  );

  // Memory: the whole decision path (decode → input → evaluate → record) memoryCalls times.
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 10_000; i++) await pipeline.check(decode(), 'grpc');
  gc?.();
  const rssBefore = process.memoryUsage().rss / 1048576;
  const heapBefore = process.memoryUsage().heapUsed / 1048576;
  const started = process.hrtime.bigint();
  for (let i = 0; i < memoryCalls; i++) {
    await pipeline.check(decode(), 'grpc');
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  gc?.();
  const rssAfter = process.memoryUsage().rss / 1048576;
  const heapAfter = process.memoryUsage().heapUsed / 1048576;
  const row = {
    'opa eval p50 µs': evalP50!,
    'opa eval p99 µs': evalP99!,
    'decode p50 µs': decodeP50!,
    'input doc p50 µs': inputP50!,
    calls: memoryCalls,
    'pipeline µs/call': (seconds * 1e6) / memoryCalls,
    'RSS before MiB': rssBefore,
    'RSS after MiB': rssAfter,
    'heap before MiB': heapBefore,
    'heap after MiB': heapAfter,
  };
  printTable('In-process decision path (default policy, realistic request)', [row]);
  return row;
}

/** Max event-loop delay (ms) since the last scrape: prom-client resets its histogram on each collect. */
async function eventLoopMaxMs(httpPort: number | null): Promise<number> {
  if (httpPort === null) return NaN;
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const m = /^verdict_nodejs_eventloop_lag_max_seconds(?:\{[^}]*\})? (\S+)$/m.exec(text);
  return m ? Number(m[1]) * 1000 : NaN;
}

async function overGrpc(o: CoreBenchOptions): Promise<Record<string, unknown>[]> {
  const verdict = await spawnVerdict(packageRoot(), ['--set', 'server.workers=1', '--set', 'cache.enabled=false']);
  const target = `127.0.0.1:${verdict.grpcPort}`;
  try {
    const rssStart = verdict.rssKiB() / 1024;
    await runGhz({ target, dataFile: FIXTURE, rps: 0, total: 5000, concurrency: 20, connections: 2 });
    const rows: Record<string, unknown>[] = [];
    for (const [scenario, rps, concurrency] of [
      [`fixed ${o.fixedRps}/s`, o.fixedRps, 100],
      ['saturation', 0, 64],
    ] as const) {
      await eventLoopMaxMs(verdict.httpPort);
      const r = await runGhz({ target, dataFile: FIXTURE, rps, durationS: o.seconds, concurrency, connections: 4 });
      rows.push({ scenario, ...r, 'event-loop max ms': await eventLoopMaxMs(verdict.httpPort), 'RSS MiB': verdict.rssKiB() / 1024 });
    }
    for (const r of rows) Object.assign(r, { 'RSS start MiB': rssStart, 'peak RSS MiB': verdict.peakRssKiB() / 1024 });
    printTable('gRPC Check on loopback (ghz; default policy, uncached; one verdict process)', rows);
    return rows;
  } finally {
    await verdict.stop();
  }
}

/** Saturation throughput with 1 and 2 worker processes, same run (ghz shares the same 2 cores). */
async function scaling(o: CoreBenchOptions): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  for (const workers of [1, 2]) {
    const verdict = await spawnVerdict(packageRoot(), ['--set', `server.workers=${workers}`, '--set', 'cache.enabled=false']);
    try {
      const target = `127.0.0.1:${verdict.grpcPort}`;
      await runGhz({ target, dataFile: FIXTURE, rps: 0, total: 3000, concurrency: 32, connections: 8 });
      const r = await runGhz({ target, dataFile: FIXTURE, rps: 0, durationS: o.seconds, concurrency: 64, connections: 8 });
      rows.push({ workers, ...r });
    } finally {
      await verdict.stop();
    }
  }
  const base = rows[0]?.rps as number;
  for (const r of rows) r['throughput ×'] = (r.rps as number) / base;
  printTable('Scaling: saturation throughput by worker processes (uncached)', rows);
  return rows;
}

export async function run(o: CoreBenchOptions): Promise<Record<string, unknown>> {
  await readFile(defaultBundlePath()); // fail early with a clear error if the build is missing
  return { inProcess: await inProcess(o.memoryCalls), grpc: await overGrpc(o), scaling: await scaling(o) };
}
