import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { packageRoot } from '../src/package-root';
import * as core from './bench-core';

/**
 * `npm run bench [-- --seconds N --memory-calls N --only core,...]`: runs every scenario side by side in one
 * run, prints tables, and writes bench-results/<time>.json with machine info so runs can be compared.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '10' },
      'memory-calls': { type: 'string', default: '1000000' },
      'fixed-rps': { type: 'string', default: '2000' },
      only: { type: 'string' },
    },
  });
  const only = values.only ? new Set(values.only.split(',')) : null;
  const want = (name: string): boolean => only === null || only.has(name);
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
