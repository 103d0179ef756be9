#!/usr/bin/env node
import { Command } from 'commander';
import { VerdictError } from '../errors';
import { registerBundle } from './command-bundle';
import { registerBundleSign } from './command-bundle-sign';
import { registerEval } from './command-eval';
import { registerServe } from './command-serve';

// One file per command group; each registers itself here.
const program = new Command('verdict').description('External authorization for Envoy: SPIFFE identity, policy as WebAssembly.');
registerServe(program);
registerBundleSign(registerBundle(program));
registerEval(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof VerdictError) process.stderr.write(`verdict: ${err.code}: ${err.message}\n`);
  else process.stderr.write(`verdict: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
