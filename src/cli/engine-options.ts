import { validateConfig } from '../config/load-config';
import { engineOptionsOf, type EngineOptions } from '../policy/policy-engine';

/** What a command's engine is built with (eval, replay, build's check): the defaults of `policy.*`, its own entrypoint. */
export function defaultEngineOptions(entrypoint: string): EngineOptions {
  return { ...engineOptionsOf(validateConfig({})), entrypoint };
}
