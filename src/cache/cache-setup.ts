import type { Clock } from '../clock';
import type { Config } from '../config/schema';
import type { ActivePolicy, PolicyStore } from '../policy/policy-store';
import type { Logger } from '../telemetry/logger';
import type { Metrics } from '../telemetry/metrics';
import { readCacheDeclaration } from './cache-declaration';
import { lintCacheKey } from './cache-lint';
import { CachePlanner } from './cache-plan';
import { DecisionCache } from './decision-cache';
import { toVerdictError } from '../errors';

export interface CacheParts {
  store: DecisionCache;
  planner: CachePlanner;
  /** Resolves when the lint of the bundle active now has finished (tests, start-up). */
  settled(): Promise<void>;
}

/**
 * Builds the decision cache and ties it to the policy store: a swap invalidates every entry, and each new
 * bundle's declared key is linted against its policy (a finding is a warning metric; in enforce mode the
 * bundle is not cached until its key is shown to cover what the policy reads).
 */
export function setUpDecisionCache(
  config: Config,
  deps: { policy: PolicyStore; metrics: Metrics; logger: Logger; clock: Clock; opa: string },
): CacheParts {
  const { metrics, logger } = deps;
  const mode = config.cache.lint;
  const store = new DecisionCache({ maxEntries: config.cache.maxEntries, maxBytes: config.cache.maxBytes, clock: deps.clock, metrics });
  const planner = new CachePlanner(mode === 'enforce', (err, sha256) => {
    logger.error(
      { code: err.code, detail: err.message, sha256 },
      'bundle cache declaration refused: decisions of this bundle are not cached',
    );
  });
  let lint: Promise<void> = Promise.resolve();
  const onSwap = (current: ActivePolicy, previous: ActivePolicy | null): void => {
    store.invalidate();
    if (previous) metrics.cacheLint.remove({ bundle: previous.bundle.name, sha256: previous.bundle.sha256 });
    if (mode !== 'off') lint = lintOnLoad(current, planner, mode === 'enforce', deps);
  };
  deps.policy.on('swap', ({ current, previous }) => onSwap(current, previous));
  if (deps.policy.current) onSwap(deps.policy.current, null);
  return { store, planner, settled: () => lint };
}

async function lintOnLoad(
  active: ActivePolicy,
  planner: CachePlanner,
  enforce: boolean,
  deps: { metrics: Metrics; logger: Logger; opa: string },
): Promise<void> {
  const { name, sha256 } = active.bundle;
  try {
    if (isCompiledOPA(active)) return compiledLint(active, planner, enforce, deps);
    const report = await lintCacheKey(active.bundle, { opa: deps.opa });
    if (report.declared === null) return;
    deps.metrics.cacheLint.set({ bundle: name, sha256 }, report.findings.length);
    if (report.ok) return planner.approve(sha256);
    if (enforce) planner.refuse(sha256);
    deps.logger.warn(
      { bundle: name, sha256, cached: !enforce, findings: report.findings.map((f) => f.message) },
      'declared cache key omits input the policy reads: a cached answer can be wrong',
    );
  } catch (err) {
    const e = toVerdictError(err, 'ERR_CACHE_LINT');
    deps.metrics.cacheLint.set({ bundle: name, sha256 }, -1);
    if (enforce) planner.refuse(sha256);
    deps.logger.warn({ bundle: name, sha256, cached: !enforce, code: e.code, detail: e.message }, 'cache key could not be checked');
  }
}

/** `opa build -t wasm` leaves stub modules: the policy that runs is policy.wasm, its Rego source is not in the bundle. */
function isCompiledOPA(active: ActivePolicy): boolean {
  return active.bundle.files.has('policy.wasm') && readCacheDeclaration(active.bundle.manifest) !== null;
}

/**
 * A compiled OPA bundle cannot be linted at load (no source). `verdict bundle build` lints the source
 * directory before it compiles, so a bundle it built was checked; in warn mode this is said at info level,
 * not as a warning on every start. enforce still refuses to cache it (the load-time check did not pass).
 */
function compiledLint(active: ActivePolicy, planner: CachePlanner, enforce: boolean, deps: { metrics: Metrics; logger: Logger }): void {
  const { name, sha256 } = active.bundle;
  deps.metrics.cacheLint.set({ bundle: name, sha256 }, -1);
  const fields = { bundle: name, sha256, cached: !enforce, code: 'ERR_CACHE_LINT' };
  if (enforce) {
    planner.refuse(sha256);
    deps.logger.warn(fields, 'compiled OPA bundle carries no Rego source: cache.lint=enforce does not cache it');
  } else deps.logger.info(fields, 'compiled OPA bundle: cache key not checked at load (verdict bundle build checks it in the source)');
}
