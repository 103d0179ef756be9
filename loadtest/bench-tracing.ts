/**
 * Tracing cost: process CPU per DecisionPipeline.check() with tracing off, and on at 1% sampling (no caller
 * context; and with an unsampled `traceparent`, the common case behind a sampling Envoy), and on at 100%
 * (every Check exported), side by side in interleaved rounds. Spans go by OTLP/HTTP to a receiver in this
 * process, so export and receive costs are both counted (a pessimistic figure). Cache off: every Check
 * evaluates. Goal (issue #16): at 1% sampling, ≤ 5% more CPU per Check than tracing off.
 * Run: npm run build && node --expose-gc dist/loadtest/bench-tracing.js
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { validateConfig } from '../src/config/load-config';
import type { DecisionPipeline } from '../src/decision/decision-pipeline';
import type { CheckRequest, ReceivedCheckRequest } from '../src/request/check-request';
import { CheckTracer } from '../src/telemetry/tracing';
import { benchRequest, inProcessPipeline } from './bench-cache';
import { runAsScript } from './lib/run-as-script';
import { median, printRows } from './lib/stats';

const CALLS = 20_000;
const ROUNDS = 5;

function withHeader(name: string, value: string): ReceivedCheckRequest {
  const r = benchRequest() as { attributes: { request: { http: { headers: Record<string, string> } } } };
  r.attributes.request.http.headers[name] = value;
  return { message: r as unknown as CheckRequest, wireBytes: 760 };
}

/** CPU µs per check() over CALLS sequential calls. */
async function cpuPerCheck(pipeline: DecisionPipeline, req: ReceivedCheckRequest): Promise<number> {
  const start = process.cpuUsage();
  for (let i = 0; i < CALLS; i++) await pipeline.check(req, 'grpc');
  const used = process.cpuUsage(start);
  return (used.user + used.system) / CALLS;
}

export async function run(): Promise<Record<string, unknown>> {
  let spansReceived = 0;
  const receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      spansReceived += (body.match(/"spanId"/g) ?? []).length;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/v1/traces`;
  const tracer = (ratio: number): CheckTracer =>
    new CheckTracer(validateConfig({ tracing: { enabled: true, otlpEndpoint: url, sampleRatio: ratio, exportDelayMs: 200 } }).tracing);
  const tracers = { p1: tracer(0.01), p100: tracer(1) };
  const plain: ReceivedCheckRequest = { message: benchRequest() as CheckRequest, wireBytes: 700 };
  const unsampledParent = withHeader('traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00');
  const variants: [string, DecisionPipeline, ReceivedCheckRequest][] = [
    ['off', (await inProcessPipeline(['cache.enabled=false'])).pipeline, plain],
    ['1%, no context', (await inProcessPipeline(['cache.enabled=false'], undefined, tracers.p1)).pipeline, plain],
    ['1%, unsampled traceparent', (await inProcessPipeline(['cache.enabled=false'], undefined, tracers.p1)).pipeline, unsampledParent],
    ['100% sampled', (await inProcessPipeline(['cache.enabled=false'], undefined, tracers.p100)).pipeline, plain],
  ];
  const samples = new Map<string, number[]>(variants.map(([name]) => [name, []]));
  for (const [, p, req] of variants) for (let i = 0; i < 3000; i++) await p.check(req, 'grpc'); // warm-up
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, p, req] of variants) samples.get(name)!.push(await cpuPerCheck(p, req));
  }
  await tracers.p1.shutdown();
  await tracers.p100.shutdown();
  await new Promise<void>((resolve) => receiver.close(() => resolve()));
  const off = median(samples.get('off')!);
  const results: Record<string, unknown> = { callsPerRound: CALLS, rounds: ROUNDS, spansReceived };
  const rows: string[][] = [['tracing', 'CPU µs/Check', 'vs off']];
  for (const [name] of variants) {
    const us = median(samples.get(name)!);
    results[name] = { cpuUsPerCheck: +us.toFixed(2), ratio: +(us / off).toFixed(3) };
    rows.push([name, us.toFixed(2), (us / off).toFixed(3)]);
  }
  printRows(rows);
  return results;
}

runAsScript(module, run);
