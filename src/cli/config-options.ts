import type { Command } from 'commander';
import type { Config } from '../config/schema';
import { configureEngines } from '../policy/engine-registry';
import { engineOptionsOf, type EngineOptions } from '../policy/policy-engine';
import { loadConfigIsolated } from './load-config-isolated';

// Loads no zod or YAML parser (serve imports `collect` from here): the config is validated in a worker.

/** The config options of a command that decides as the server does (eval, replay): `-c` and `--set`, as `serve` takes them. */
export function configOptions(command: Command): Command {
  return command
    .option('-c, --config <file>', 'YAML config file: the engines, policy.* and limits.maxInputDepth are those the server would use')
    .option('--set <key=value>', 'override a config key, as verdict serve takes it (repeatable)', collect, []);
}

export interface ConfigOpts {
  config?: string;
  set: string[];
}

/** The config `serve` would run with for these options (the environment's VERDICT_* keys included), its `engines` section applied. */
export async function commandConfig(opts: ConfigOpts): Promise<Config> {
  const config = await loadConfigIsolated({ file: opts.config, overrides: opts.set });
  configureEngines(config.engines);
  return config;
}

/** The engine options the server builds from `config`, with an entrypoint given on the command line in place of policy.entrypoint. */
export function commandEngineOptions(config: Config, entrypoint: string | undefined): EngineOptions {
  const options = engineOptionsOf(config);
  return entrypoint === undefined ? options : { ...options, entrypoint };
}

export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
