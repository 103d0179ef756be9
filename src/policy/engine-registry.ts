import type { EnginesConfig } from '../config/sections/engines';
import { DEFAULT_ENGINES_CONFIG } from '../config/sections/engines-defaults';
import { VerdictError } from '../errors';
import { CedarEngine } from './engine-cedar';
import { OPAEngine } from './engine-opa';
import { WasmEngine } from './engine-wasm';
import type { EngineFactory, EngineKind } from './policy-engine';

/** Engines by kind. A new engine registers here; nothing else branches on the kind. */
const factories = new Map<EngineKind, EngineFactory>([
  ['opa', OPAEngine.create],
  ['cedar', CedarEngine.factory(DEFAULT_ENGINES_CONFIG.cedar)],
  ['wasm', WasmEngine.factory(DEFAULT_ENGINES_CONFIG.wasm)],
]);

export function registerEngine(kind: EngineKind, factory: EngineFactory): void {
  factories.set(kind, factory);
}

/** Applies the `engines` config section (called once by the composition root, before the first bundle). */
export function configureEngines(config: EnginesConfig): void {
  registerEngine('cedar', CedarEngine.factory(config.cedar));
  registerEngine('wasm', WasmEngine.factory(config.wasm));
}

export function engineFactory(kind: EngineKind): EngineFactory {
  const f = factories.get(kind);
  if (!f) throw new VerdictError('ERR_BUNDLE_ENGINE', `no engine "${kind}" is available in this build`);
  return f;
}
