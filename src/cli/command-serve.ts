import type { Command } from 'commander';
import { loadConfig } from '../config/load-config';
import { startVerdict } from '../main';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('Serve envoy.service.auth.v3.Authorization/Check')
    .option('-c, --config <file>', 'YAML config file')
    .option('--set <key=value>', 'override a config key, e.g. --set server.grpc.port=9191 (repeatable)', collect, [])
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
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
