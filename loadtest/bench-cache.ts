/**
 * Decision cache benchmark: cached vs uncached Check, side by side, in one run.
 *  1. End to end over gRPC with ghz (the pinned load client; Go, so it leaves the server most of a core):
 *     requests/s and p99 with the cache off and with every request a hit.
 *  2. In process: server time of DecisionPipeline.check() on a hit and on a miss, the cost of the cache
 *     lookup itself, heap bytes allocated per call, and how often the input document is built (a hit must
 *     build none).
 * Run: npm run build && node --expose-gc dist/loadtest/bench-cache.js
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { requestKey } from '../src/cache/cache-key';
import { toolPath } from '../src/cli/tools';
import { loadConfig } from '../src/config/load-config';
import { setUpDecisionCache, type CacheParts } from '../src/cache/cache-setup';
import { systemClock } from '../src/clock';
import { DecisionPipeline } from '../src/decision/decision-pipeline';
import { CountingDecisionLog } from '../src/decisionlog/decision-log-setup';
import type { DecisionLog } from '../src/decisionlog/decision-record';
import { defaultBundlePath } from '../src/package-root';
import { PolicyStore } from '../src/policy/policy-store';
import { Metrics } from '../src/telemetry/metrics';
import { startVerdict, type RunningVerdict } from '../src/main';
import * as inputDocument from '../src/request/input-document';
import type { CheckRequest, ReceivedCheckRequest } from '../src/request/check-request';
import { envoyProtoIncludeDirs } from '../src/server/envoy-protos';
import { createLogger } from '../src/telemetry/logger';
import type { CheckTracer } from '../src/telemetry/tracing';
import { runAsScript } from './lib/run-as-script';
import { printRows } from './lib/stats';

const execFileAsync = promisify(execFile);

/** A realistic CheckRequest (protojson for ghz; the same object decoded for in-process calls). */
export function benchRequest(path = '/api/orders/7'): Record<string, unknown> {
  return {
    attributes: {
      source: {
        address: { socketAddress: { address: '10.0.0.7', portValue: 51234 } },
        principal: 'spiffe://example.org/ns/default/sa/frontend',
      },
      destination: { address: { socketAddress: { address: '10.0.0.9', portValue: 8080 } } },
      request: {
        http: {
          id: '4112930829876185000',
          method: 'GET',
          path,
          host: 'api.example.org',
          scheme: 'http',
          protocol: 'HTTP/1.1',
          headers: {
            ':authority': 'api.example.org',
            ':method': 'GET',
            ':path': path,
            'user-agent': 'curl/8.5.0',
            accept: 'application/json',
            'x-request-id': '0b5e3c1e-2f0e-4b2a-9a57-6c1f0f1d8e21',
            authorization: 'Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl',
            cookie: 'session=abc123; theme=dark',
          },
        },
      },
      contextExtensions: { route: 'default' },
    },
  };
}

export interface GhzResult {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  count: number;
  errors: number;
}

/** ghz against 127.0.0.1:port, fixed request, `total` calls at `concurrency`. */
export async function ghz(port: number, data: unknown, total = 20_000, concurrency = 32): Promise<GhzResult> {
  const args = ['--insecure', '--proto', 'envoy/service/auth/v3/external_auth.proto'];
  args.push('--import-paths', envoyProtoIncludeDirs().join(','));
  args.push(
    '--call',
    'envoy.service.auth.v3.Authorization.Check',
    '-d',
    JSON.stringify(data),
    '-n',
    String(total),
    '-c',
    String(concurrency),
  );
  args.push('--connections', '2', '--format', 'json', `127.0.0.1:${port}`);
  const { stdout } = await execFileAsync(toolPath('ghz'), args, { maxBuffer: 64 * 1024 * 1024 });
  const r = JSON.parse(stdout) as {
    rps: number;
    count: number;
    latencyDistribution: { percentage: number; latency: number }[];
    statusCodeDistribution?: Record<string, number>;
  };
  const at = (p: number): number => (r.latencyDistribution.find((x) => x.percentage === p)?.latency ?? NaN) / 1e6;
  const ok = r.statusCodeDistribution?.OK ?? 0;
  return { rps: Math.round(r.rps), p50Ms: at(50), p99Ms: at(99), count: r.count, errors: r.count - ok };
}

export async function startBenchVerdict(overrides: string[]): Promise<RunningVerdict> {
  const config = loadConfig({ overrides: ['server.grpc.port=0', 'server.http.port=null', 'log.level=silent', ...overrides] });
  return startVerdict(config, { logger: createLogger('silent') });
}

/** The same parts startVerdict wires, without the server: for measuring check() alone. */
export async function inProcessPipeline(
  overrides: string[],
  decisionLog?: DecisionLog,
  tracer?: CheckTracer,
): Promise<{ pipeline: DecisionPipeline; cache: CacheParts | null; policy: PolicyStore }> {
  const config = loadConfig({ overrides: ['log.level=silent', ...overrides] });
  const metrics = new Metrics({ defaultMetrics: false });
  const logger = createLogger('silent');
  const policy = new PolicyStore({ entrypoint: config.policy.entrypoint, maxMemoryPages: 1024, recycleMemoryPages: 256 });
  const cache = config.cache.enabled
    ? setUpDecisionCache(config, { policy, metrics, logger, clock: systemClock, opa: toolPath('opa') })
    : null;
  await policy.activateFile(defaultBundlePath());
  await cache?.settled();
  const log = decisionLog ?? new CountingDecisionLog(metrics);
  return {
    pipeline: new DecisionPipeline({
      config,
      policy,
      decisionLog: log,
      metrics,
      clock: systemClock,
      ...(cache ? { cache } : {}),
      ...(tracer ? { tracer } : {}),
    }),
    cache,
    policy,
  };
}

/** µs per check() (median of per-call times and p99), heap bytes per call, input documents built per call. */
async function inProcess(
  pipeline: DecisionPipeline,
  req: ReceivedCheckRequest,
  n: number,
): Promise<{ meanUs: number; p99Us: number; heapBytesPerCall: number; inputsBuiltPerCall: number }> {
  for (let i = 0; i < 2000; i++) await pipeline.check(req, 'grpc'); // warm-up (JIT, cache entry)
  const times = new Float64Array(n);
  let built = 0;
  const real = inputDocument.buildInputDocument;
  (inputDocument as { buildInputDocument: typeof real }).buildInputDocument = (...a) => {
    built++;
    return real(...a);
  };
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  let heapBytes = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await pipeline.check(req, 'grpc');
    times[i] = Number(process.hrtime.bigint() - t) / 1000;
    if (i === 999) heapBytes = (process.memoryUsage().heapUsed - heap0) / 1000;
  }
  const total = Number(process.hrtime.bigint() - start) / 1000;
  (inputDocument as { buildInputDocument: typeof real }).buildInputDocument = real;
  times.sort();
  return {
    meanUs: total / n,
    p99Us: times[Math.floor(n * 0.99)] as number,
    heapBytesPerCall: Math.round(heapBytes),
    inputsBuiltPerCall: built / n,
  };
}

export async function run(): Promise<Record<string, unknown>> {
  const data = benchRequest();
  const decoded: ReceivedCheckRequest = { message: data as CheckRequest, wireBytes: 700 };
  const results: Record<string, unknown> = {};

  const uncachedV = await startBenchVerdict(['cache.enabled=false']);
  const cachedV = await startBenchVerdict(['cache.enabled=true']);
  await cachedV.cache?.settled();
  try {
    const uncached = await ghz(uncachedV.grpcPort, data);
    const cached = await ghz(cachedV.grpcPort, data);
    results.e2e = {
      uncached,
      cached,
      throughputRatio: +(cached.rps / uncached.rps).toFixed(2),
      p99Ratio: +(cached.p99Ms / uncached.p99Ms).toFixed(2),
    };

    const miss = await inProcessPipeline(['cache.enabled=false']);
    const hit = await inProcessPipeline(['cache.enabled=true']);
    const missP = await inProcess(miss.pipeline, decoded, 20_000);
    const hitP = await inProcess(hit.pipeline, decoded, 20_000);
    const store = hit.cache!.store;
    const plan = hit.cache!.planner.planFor(hit.policy.current!)!;
    await hit.pipeline.check(decoded, 'grpc'); // re-stores the entry if its TTL ran out meanwhile
    const n = 100_000;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) store.get(requestKey(plan.sha256, plan.declaration, data as CheckRequest, null));
    const lookupUs = Number(process.hrtime.bigint() - t0) / 1000 / n;
    results.inProcess = { miss: missP, hit: hitP, lookupUs: +lookupUs.toFixed(3), hitSavesUs: +(missP.meanUs - hitP.meanUs).toFixed(2) };
    results.cacheStats = store.stats();
  } finally {
    await uncachedV.stop();
    await cachedV.stop();
  }
  printTable(results);
  return results;
}

function printTable(r: Record<string, unknown>): void {
  const e = r.e2e as { uncached: GhzResult; cached: GhzResult; throughputRatio: number };
  const p = r.inProcess as {
    miss: { meanUs: number; p99Us: number; heapBytesPerCall: number; inputsBuiltPerCall: number };
    hit: typeof p.miss;
    lookupUs: number;
  };
  const rows = [
    ['', 'uncached', 'cached (hit)', 'ratio'],
    ['gRPC req/s (ghz)', String(e.uncached.rps), String(e.cached.rps), `${e.throughputRatio}x`],
    ['gRPC p99 ms', e.uncached.p99Ms.toFixed(2), e.cached.p99Ms.toFixed(2), (e.cached.p99Ms / e.uncached.p99Ms).toFixed(2)],
    ['check() µs (mean)', p.miss.meanUs.toFixed(2), p.hit.meanUs.toFixed(2), (p.hit.meanUs / p.miss.meanUs).toFixed(2)],
    ['check() µs (p99)', p.miss.p99Us.toFixed(2), p.hit.p99Us.toFixed(2), ''],
    ['heap bytes / call', String(p.miss.heapBytesPerCall), String(p.hit.heapBytesPerCall), ''],
    ['input docs built / call', String(p.miss.inputsBuiltPerCall), String(p.hit.inputsBuiltPerCall), ''],
    ['cache lookup µs (key + get)', '', p.lookupUs.toFixed(3), ''],
  ];
  printRows(rows);
}

runAsScript(module, run);
