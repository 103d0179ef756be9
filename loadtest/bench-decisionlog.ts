/**
 * Decision logging on vs off, side by side, in one run (cache off, so every Check evaluates):
 *  1. End to end over gRPC with ghz: requests/s and p99 with no sink vs a file sink (through the spool).
 *  2. In process: µs per DecisionPipeline.check() with the counting log vs the real pipeline.
 * Run: npm run build && node --expose-gc dist/loadtest/bench-decisionlog.js
 */
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { systemClock } from '../src/clock';
import { loadConfig } from '../src/config/load-config';
import { createDecisionLog } from '../src/decisionlog/decision-log-setup';
import type { CheckRequest, ReceivedCheckRequest } from '../src/request/check-request';
import { createLogger } from '../src/telemetry/logger';
import { Metrics } from '../src/telemetry/metrics';
import { benchRequest, ghz, inProcessPipeline, startBenchVerdict, type GhzResult } from './bench-cache';
import { runAsScript } from './lib/run-as-script';
import { printRows } from './lib/stats';

async function checksPerSecond(overrides: string[], logOverrides: string[], n: number): Promise<{ meanUs: number; perSecond: number }> {
  const metrics = new Metrics({ defaultMetrics: false });
  const config = loadConfig({ overrides: ['log.level=silent', ...logOverrides] });
  const log = await createDecisionLog(config, { metrics, logger: createLogger('silent'), clock: systemClock });
  const { pipeline } = await inProcessPipeline(overrides, log);
  const req: ReceivedCheckRequest = { message: benchRequest() as CheckRequest, wireBytes: 700 };
  for (let i = 0; i < 2000; i++) await pipeline.check(req, 'grpc');
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await pipeline.check(req, 'grpc');
  const us = Number(process.hrtime.bigint() - start) / 1000;
  await log.close();
  return { meanUs: us / n, perSecond: Math.round((n / us) * 1e6) };
}

export async function run(): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'verdict-bench-log-'));
  const sink = [
    `decisionLog.file.path=${join(dir, 'decisions.log')}`,
    `decisionLog.spool.dir=${join(dir, 'spool')}`,
    'decisionLog.file.maxBytes=268435456',
  ];
  const results: Record<string, unknown> = {};
  const off = await startBenchVerdict(['cache.enabled=false']);
  const on = await startBenchVerdict(['cache.enabled=false', ...sink]);
  try {
    const data = benchRequest();
    const eOff = await ghz(off.grpcPort, data);
    const eOn = await ghz(on.grpcPort, data);
    results.e2e = { off: eOff, on: eOn, throughputCostPct: +((1 - eOn.rps / eOff.rps) * 100).toFixed(1) };
  } finally {
    await off.stop();
    await on.stop();
  }
  const pOff = await checksPerSecond(['cache.enabled=false'], [], 20_000);
  const pOn = await checksPerSecond(
    ['cache.enabled=false'],
    sink.map((s) => s.replace('decisions.log', 'inproc.log').replace('/spool', '/spool2')),
    20_000,
  );
  results.inProcess = {
    off: pOff,
    on: pOn,
    costPct: +((1 - pOn.perSecond / pOff.perSecond) * 100).toFixed(1),
    addedUsPerDecision: +(pOn.meanUs - pOff.meanUs).toFixed(2),
  };
  rmSync(dir, { recursive: true, force: true });
  const e = results.e2e as { off: GhzResult; on: GhzResult; throughputCostPct: number };
  const p = results.inProcess as { off: { meanUs: number; perSecond: number }; on: { meanUs: number; perSecond: number }; costPct: number };
  const rows = [
    ['', 'logging off', 'logging on', 'cost'],
    ['gRPC req/s (ghz)', String(e.off.rps), String(e.on.rps), `${e.throughputCostPct}%`],
    ['gRPC p99 ms', e.off.p99Ms.toFixed(2), e.on.p99Ms.toFixed(2), ''],
    ['check() per s (in process)', String(p.off.perSecond), String(p.on.perSecond), `${p.costPct}%`],
    ['check() µs (mean)', p.off.meanUs.toFixed(2), p.on.meanUs.toFixed(2), ''],
  ];
  printRows(rows);
  return results;
}

runAsScript(module, run);
