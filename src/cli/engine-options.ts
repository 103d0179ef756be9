import { validateConfig } from '../config/load-config';
import { engineOptionsOf, type EngineOptions } from '../policy/policy-engine';

/** What build's check builds its engine with: the defaults of `policy.*`, its own entrypoint. */
export function defaultEngineOptions(entrypoint: string): EngineOptions {
  return { ...engineOptionsOf(validateConfig({})), entrypoint };
}
