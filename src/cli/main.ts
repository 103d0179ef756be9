#!/usr/bin/env node
import { Command } from 'commander';
import { VerdictError } from '../errors';

/**
 * One file per command group, each registering itself. Each group is loaded only when it is the command
 * being run (or for help, when every group is): a `verdict serve` process never loads the bundle
 * builder, the signer, the fast-path tools or the config schema they read (docs/memory.md).
 */
const GROUPS: Record<string, (program: Command) => Promise<void>> = {
  serve: async (program) => (await import('./command-serve')).registerServe(program),
  bundle: async (program) => {
    const bundle = (await import('./command-bundle')).registerBundle(program);
    (await import('./command-lint')).registerLint(bundle);
    (await import('./command-bundle-sign')).registerBundleSign(bundle);
  },
  eval: async (program) => (await import('./command-eval')).registerEval(program),
  fastpath: async (program) => (await import('./command-fastpath')).registerFastpath(program),
  decisionlog: async (program) => (await import('./command-decisionlog')).registerDecisionLog(program),
  replay: async (program) => (await import('./command-replay')).registerReplay(program),
  shadow: async (program) => (await import('./command-shadow')).registerShadow(program),
};

async function main(argv: string[]): Promise<void> {
  const program = new Command('verdict').description('External authorization for Envoy: SPIFFE identity, policy as WebAssembly.');
  const named = argv[2] !== undefined && Object.hasOwn(GROUPS, argv[2]) ? GROUPS[argv[2]] : undefined;
  if (named) await named(program);
  else for (const register of Object.values(GROUPS)) await register(program);
  await program.parseAsync(argv);
}

main(process.argv).catch((err: unknown) => {
  if (err instanceof VerdictError) process.stderr.write(`verdict: ${err.code}: ${err.message}\n`);
  else process.stderr.write(`verdict: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
