import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { loadConfig } from '../src/config/load-config';
import { startVerdict } from '../src/main';
import { packageRoot } from '../src/package-root';
import { createLogger } from '../src/telemetry/logger';
import { startEnvoy } from '../test/helpers/envoy-process';
import { renderEnvoyConfigFile } from '../test/helpers/envoy-template';
import { runAsScript } from './lib/run-as-script';

/**
 * Envoy with ext_authz → verdict vs the same Envoy without it, same upstream, same run. One Envoy
 * (envoy/sidecar-grpc.yaml) serves both: /public/* is checked by verdict (default policy: public-docs),
 * /healthz has ext_authz disabled per route. Load is open-loop at a fixed rate (latency measured from the
 * scheduled send time, so queueing counts), then closed-loop for throughput. Upstream and load generator
 * run in worker threads; verdict runs on the main thread.
 */
const RATE_PER_S = 1000;
const RATE_DURATION_MS = 5000;
const CLOSED_CONCURRENCY = 16;
const CLOSED_DURATION_MS = 3000;

const UPSTREAM_WORKER = `
const { parentPort } = require('node:worker_threads');
const http = require('node:http');
const s = http.createServer((req, res) => { req.resume(); req.on('end', () => { res.writeHead(200, {'content-type': 'text/plain'}); res.end('ok'); }); });
s.listen(0, '127.0.0.1', () => parentPort.postMessage(s.address().port));
parentPort.on('message', () => s.close(() => process.exit(0)));
`;

const LOAD_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const { port, path, mode, rate, durationMs, concurrency } = workerData;
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const lat = []; let errors = 0; let non200 = 0;
function one(scheduled) {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path, agent }, (res) => {
      res.resume();
      res.on('end', () => { if (res.statusCode !== 200) non200++; lat.push(Number(process.hrtime.bigint() - scheduled) / 1e3); resolve(); });
    });
    req.on('error', () => { errors++; resolve(); });
    req.end();
  });
}
async function main() {
  const start = process.hrtime.bigint();
  const endNs = start + BigInt(durationMs) * 1000000n;
  const pending = [];
  if (mode === 'rate') {
    const intervalNs = BigInt(Math.round(1e9 / rate));
    let next = start;
    while (next < endNs) {
      // Sleep ~1 ms, then send every request that has come due (no busy-wait stealing a core).
      await new Promise((r) => setTimeout(r, 1));
      const now = process.hrtime.bigint();
      while (next <= now && next < endNs) { pending.push(one(next)); next += intervalNs; }
    }
  } else {
    for (let c = 0; c < concurrency; c++) pending.push((async () => { while (process.hrtime.bigint() < endNs) await one(process.hrtime.bigint()); })());
  }
  await Promise.all(pending);
  const elapsedS = Number(process.hrtime.bigint() - start) / 1e9;
  agent.destroy();
  parentPort.postMessage({ lat, errors, non200, elapsedS });
}
main();
`;

interface LoadResult {
  p50Ms: number;
  p99Ms: number;
  rps: number;
  errors: number;
  non200: number;
}

function runWorker<T>(code: string, workerData: unknown): { worker: Worker; first: Promise<T> } {
  const worker = new Worker(code, { eval: true, workerData });
  const first = new Promise<T>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  return { worker, first };
}

async function load(port: number, path: string, mode: 'rate' | 'closed'): Promise<LoadResult> {
  const data = {
    port,
    path,
    mode,
    rate: RATE_PER_S,
    durationMs: mode === 'rate' ? RATE_DURATION_MS : CLOSED_DURATION_MS,
    concurrency: CLOSED_CONCURRENCY,
  };
  const { worker, first } = runWorker<{ lat: number[]; errors: number; non200: number; elapsedS: number }>(LOAD_WORKER, data);
  const r = await first;
  await worker.terminate();
  const sorted = Float64Array.from(r.lat).sort();
  const q = (p: number): number => (sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN) / 1000;
  return { p50Ms: q(0.5), p99Ms: q(0.99), rps: sorted.length / r.elapsedS, errors: r.errors, non200: r.non200 };
}

export async function run(): Promise<Record<string, unknown>> {
  const upstream = runWorker<number>(UPSTREAM_WORKER, null);
  const appPort = await upstream.first;
  const verdict = await startVerdict(loadConfig({ overrides: ['server.grpc.port=0', 'server.http.port=null', 'log.level=silent'] }), {
    logger: createLogger('silent'),
  });
  const dir = mkdtempSync(join(tmpdir(), 'verdict-bench-envoy-'));
  const file = renderEnvoyConfigFile(join(packageRoot(), 'envoy', 'sidecar-grpc.yaml'), dir, {
    ADMIN_PORT: 0,
    LISTENER_PORT: 0,
    VERDICT_PORT: verdict.grpcPort,
    APP_PORT: appPort,
    AUTHZ_TIMEOUT: '0.5s',
  });
  const envoy = await startEnvoy(file, dir);
  try {
    const port = envoy.listenerPort('ingress_http');
    await load(port, '/public/warmup', 'closed'); // JIT, wasm tier-up, connection pools
    const authzRate = await load(port, '/public/bench', 'rate');
    const plainRate = await load(port, '/healthz', 'rate');
    const authzMax = await load(port, '/public/bench', 'closed');
    const plainMax = await load(port, '/healthz', 'closed');
    const result = {
      ratePerS: RATE_PER_S,
      withAuthz: authzRate,
      withoutAuthz: plainRate,
      addedP50Ms: authzRate.p50Ms - plainRate.p50Ms,
      addedP99Ms: authzRate.p99Ms - plainRate.p99Ms,
      maxRpsWithAuthz: authzMax.rps,
      maxRpsWithoutAuthz: plainMax.rps,
      throughputRatio: authzMax.rps / plainMax.rps,
      goalAddedP99Ms: 0.5,
    };
    printTable(result);
    return result;
  } finally {
    await envoy.stop();
    await verdict.stop();
    upstream.worker.postMessage('stop');
    await upstream.worker.terminate();
  }
}

function printTable(r: {
  withAuthz: LoadResult;
  withoutAuthz: LoadResult;
  addedP50Ms: number;
  addedP99Ms: number;
  maxRpsWithAuthz: number;
  maxRpsWithoutAuthz: number;
  throughputRatio: number;
}): void {
  const f = (n: number): string => n.toFixed(3);
  console.log(`envoy scenario @ ${RATE_PER_S} req/s for ${RATE_DURATION_MS / 1000}s, then closed loop x${CLOSED_CONCURRENCY}`);
  console.log('scenario             p50 ms   p99 ms   max req/s  errors/non-200');
  console.log(
    `envoy + ext_authz    ${f(r.withAuthz.p50Ms)}    ${f(r.withAuthz.p99Ms)}    ${r.maxRpsWithAuthz.toFixed(0).padStart(8)}   ${r.withAuthz.errors}/${r.withAuthz.non200}`,
  );
  console.log(
    `envoy, no ext_authz  ${f(r.withoutAuthz.p50Ms)}    ${f(r.withoutAuthz.p99Ms)}    ${r.maxRpsWithoutAuthz.toFixed(0).padStart(8)}   ${r.withoutAuthz.errors}/${r.withoutAuthz.non200}`,
  );
  console.log(
    `added by verdict     ${f(r.addedP50Ms)}    ${f(r.addedP99Ms)}    ratio ${r.throughputRatio.toFixed(2)}  (goal: added p99 < 0.5 ms)`,
  );
}

runAsScript(module, run);
