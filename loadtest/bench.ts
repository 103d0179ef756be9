import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { packageRoot } from '../src/package-root';
import * as cache from './bench-cache';
import * as core from './bench-core';
import * as decisionlog from './bench-decisionlog';
import * as engines from './bench-engines';
import * as envoy from './bench-envoy';
import * as fastpath from './bench-fastpath';
import * as identity from './bench-identity';
import * as kernelTelemetry from './bench-kernel-telemetry';
import * as peer from './bench-peer';
import * as shadow from './bench-shadow';
import * as opaData from './bench-opa-data';
import * as refusal from './bench-refusal';
import * as swap from './bench-swap';
import * as tenants from './bench-tenants';
import * as tracing from './bench-tracing';
import * as transport from './bench-transport';

/** Scenario modules beside the core one; each prints its own table and returns its numbers. */
const SCENARIOS: Record<string, () => Promise<Record<string, unknown>>> = {
  peer: () => peer.run(),
  identity: identity.run,
  cache: cache.run,
  decisionlog: decisionlog.run,
  engines: engines.run,
  envoy: envoy.run,
  fastpath: fastpath.run,
  'kernel-telemetry': kernelTelemetry.run,
  swap: swap.run,
  shadow: shadow.run,
  tenants: tenants.run,
  tracing: tracing.run,
  refusal: refusal.run,
  'opa-data': opaData.run,
};

/**
 * `npm run bench [-- --seconds N --memory-calls N --rounds N --before DIR --only core,transport,peer,... --skip fastpath]`: runs every scenario
 * in one run (each compares its A and B side by side), prints tables, and writes bench-results/<time>.json
 * with machine info so runs can be compared. A scenario that fails is reported and makes the exit code 1.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '10' },
      'memory-calls': { type: 'string', default: '1000000' },
      'fixed-rps': { type: 'string', default: '2000' },
      rounds: { type: 'string', default: '3' },
      /** A built checkout of an earlier verdict (the grpc-js edge) measured beside this one in the transport scenario. */
      before: { type: 'string' },
      only: { type: 'string' },
      skip: { type: 'string' },
    },
  });
  const only = values.only ? new Set(values.only.split(',')) : null;
  const skip = new Set(values.skip ? values.skip.split(',') : []);
  const want = (name: string): boolean => (only === null || only.has(name)) && !skip.has(name);
  const results: Record<string, unknown> = {
    machine: { cpus: cpus().length, model: cpus()[0]?.model, memGiB: totalmem() / 2 ** 30, loadavg: loadavg(), node: process.version },
    startedAt: new Date().toISOString(),
  };
  if (want('core')) {
    results.core = await core.run({
      seconds: Number(values.seconds),
      memoryCalls: Number(values['memory-calls']),
      fixedRps: Number(values['fixed-rps']),
    });
  }
  if (want('transport')) {
    process.stdout.write('\n== transport\n');
    results.transport = await transport.run({
      seconds: Number(values.seconds),
      rounds: Number(values.rounds),
      fixedRps: Number(values['fixed-rps']),
      memoryCalls: Number(values['memory-calls']),
      before: values.before ?? null,
    });
  }
  for (const [name, run] of Object.entries(SCENARIOS)) {
    if (!want(name)) continue;
    process.stdout.write(`\n== ${name}\n`);
    try {
      results[name] = await run();
    } catch (err) {
      // One scenario that cannot run (no root for BPF, say) is reported, not hidden; the others still run.
      results[name] = { error: (err as Error).message };
      process.stdout.write(`scenario ${name} failed: ${(err as Error).message}\n`);
      process.exitCode = 1;
    }
  }
  const dir = join(packageRoot(), 'bench-results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${results.startedAt as string}.json`.replace(/:/g, '-'));
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`\nresults: ${file}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
