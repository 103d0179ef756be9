#!/usr/bin/env node
import { Command } from 'commander';
import { VerdictError } from '../errors';
import { registerBundle } from './command-bundle';
import { registerBundleSign } from './command-bundle-sign';
import { registerDecisionLog } from './command-decisionlog';
import { registerEval } from './command-eval';
import { registerFastpath } from './command-fastpath';
import { registerLint } from './command-lint';
import { registerReplay } from './command-replay';
import { registerServe } from './command-serve';
import { registerShadow } from './command-shadow';

// One file per command group; each registers itself here.
const program = new Command('verdict').description('External authorization for Envoy: SPIFFE identity, policy as WebAssembly.');
registerServe(program);
const bundle = registerBundle(program);
registerLint(bundle);
registerBundleSign(bundle);
registerEval(program);
registerFastpath(program);
registerDecisionLog(program);
registerReplay(program);
registerShadow(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof VerdictError) process.stderr.write(`verdict: ${err.code}: ${err.message}\n`);
  else process.stderr.write(`verdict: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
