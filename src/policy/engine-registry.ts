import { VerdictError } from '../errors';
import { OPAEngine } from './engine-opa';
import type { EngineFactory, EngineKind } from './policy-engine';

/** Engines by kind. A new engine registers here; nothing else branches on the kind. */
const factories = new Map<EngineKind, EngineFactory>([['opa', OPAEngine.create]]);

export function registerEngine(kind: EngineKind, factory: EngineFactory): void {
  factories.set(kind, factory);
}

export function engineFactory(kind: EngineKind): EngineFactory {
  const f = factories.get(kind);
  if (!f) throw new VerdictError('ERR_BUNDLE_ENGINE', `no engine "${kind}" is available in this build`);
  return f;
}
