#!/usr/bin/env node
import { readFile } from 'node:fs/promises';
import { Command } from 'commander';
import { loadConfig } from '../config/load-config';
import { VerdictError } from '../errors';
import { startVerdict } from '../main';
import { defaultBundlePath } from '../package-root';
import { readBundle } from '../policy/bundle-reader';
import { engineFactory } from '../policy/engine-registry';
import type { InputDocument } from '../request/input-document';
import { buildRegoBundle } from './bundle-build';

const program = new Command('verdict').description('External authorization for Envoy: SPIFFE identity, policy as WebAssembly.');

program
  .command('serve')
  .description('Serve envoy.service.auth.v3.Authorization/Check')
  .option('-c, --config <file>', 'YAML config file')
  .option('--set <key=value...>', 'override a config key, e.g. --set server.grpc.port=9191', collect, [])
  .option('--bundle <file>', 'policy bundle (.tar.gz); default: the embedded default')
  .action(async (opts: { config?: string; set: string[]; bundle?: string }) => {
    const overrides = [...opts.set, ...(opts.bundle ? [`policy.bundle=${opts.bundle}`] : [])];
    const config = loadConfig({ file: opts.config, env: process.env, overrides });
    const verdict = await startVerdict(config);
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      process.stderr.write(`verdict: ${signal}, draining\n`);
      void verdict.stop().then(() => process.exit(0));
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });

const bundle = program.command('bundle').description('Build and inspect policy bundles');
bundle
  .command('build <dir>')
  .description('Build a Rego policy directory into a wasm bundle with the pinned opa')
  .requiredOption('-o, --out <file>', 'output .tar.gz')
  .option('-e, --entrypoint <path...>', 'rule path(s) to compile (default: manifest metadata.verdict.entrypoint)')
  .option('--revision <rev>', 'bundle revision')
  .action(async (dir: string, opts: { out: string; entrypoint?: string[]; revision?: string }) => {
    const b = await buildRegoBundle(dir, {
      out: opts.out,
      ...(opts.entrypoint ? { entrypoints: opts.entrypoint } : {}),
      ...(opts.revision ? { revision: opts.revision } : {}),
    });
    process.stdout.write(`${JSON.stringify({ out: opts.out, name: b.name, revision: b.revision, sha256: b.sha256, engine: b.engine })}\n`);
  });
bundle
  .command('inspect <file>')
  .description('Print a bundle manifest, files, hashes and engine')
  .action(async (file: string) => {
    const b = await readBundle(await readFile(file), file);
    const files = [...b.files].map(([path, data]) => ({ path, bytes: data.length }));
    process.stdout.write(
      `${JSON.stringify({ name: b.name, revision: b.revision, sha256: b.sha256, engine: b.engine, manifest: b.manifest, files }, null, 2)}\n`,
    );
  });

program
  .command('eval')
  .description('Evaluate one input document (JSON) against a bundle and print the decision')
  .requiredOption('-i, --input <file>', 'input document JSON (the shape verdict builds from a CheckRequest)')
  .option('-b, --bundle <file>', 'bundle (default: the embedded default)')
  .option('--entrypoint <path>', 'rule path', 'envoy/authz/allow')
  .option('--explain', 'print the reasons the engine gave')
  .action(async (opts: { input: string; bundle?: string; entrypoint: string; explain?: boolean }) => {
    const path = opts.bundle ?? defaultBundlePath();
    const b = await readBundle(await readFile(path), path);
    const engine = await engineFactory(b.engine)(b, { entrypoint: opts.entrypoint, maxMemoryPages: 1024, recycleMemoryPages: 256 });
    const input = JSON.parse(await readFile(opts.input, 'utf8')) as InputDocument;
    const result = await engine.evaluate(input);
    const out = opts.explain
      ? { bundle: { name: b.name, revision: b.revision, sha256: b.sha256 }, ...result }
      : { allowed: result.allowed };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    if (!result.allowed) process.exitCode = 2;
  });

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof VerdictError) process.stderr.write(`verdict: ${err.code}: ${err.message}\n`);
  else process.stderr.write(`verdict: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
