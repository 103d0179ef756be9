import { setUpDecisionCache } from '../cache/cache-setup';
import { toolPath } from '../cli/tools';
import type { Clock } from '../clock';
import type { Config } from '../config/schema';
import type { TenantConfig, TenantsConfig } from '../config/sections/tenants';
import type { Decision } from '../decision/decision';
import type { DecisionObserver } from '../decision/decision-observer';
import type { DecisionRecord } from '../decisionlog/decision-record';
import { VerdictError } from '../errors';
import type { BundleLoader } from '../policy/bundle-loader';
import { loaderFromSection, startLoaderInBackground } from '../policy/bundle-loader-background';
import { LoadSlots } from '../policy/load-slots';
import { PolicyStore } from '../policy/policy-store';
import { engineOptionsOf } from '../policy/policy-engine';
import type { CheckRequest } from '../request/check-request';
import type { SPIFFEInput } from '../request/input-document';
import type { Logger } from '../telemetry/logger';
import type { Metrics } from '../telemetry/metrics';
import { TenantMetrics } from './tenant-metrics';
import type { RoutedTenant, TenantRouter } from './tenant-router';
import { TenantSelectorIndex } from './tenant-selector';

export interface Tenant extends RoutedTenant {
  readonly loader: BundleLoader;
  /** Resolves once the first bundle is active (or the tenant is stopped). */
  readonly started: Promise<void>;
}

export interface TenantsRuntime extends TenantRouter, DecisionObserver {
  readonly tenants: ReadonlyMap<string, Tenant>;
  readonly metrics: TenantMetrics;
  stop(): Promise<void>;
}

interface Deps {
  metrics: Metrics;
  logger: Logger;
  clock: Clock;
}

/**
 * Starts one bundle follower, store and cache per configured tenant, independently: one tenant's refusal, swap
 * or missing bundle touches no other (its requests are denied ERR_POLICY_NOT_LOADED until its bundle arrives).
 * Null when `tenants` is not configured.
 */
export function startTenants(config: Config, deps: Deps): TenantsRuntime | null {
  const t = config.tenants;
  if (t === null) return null;
  const metrics = new TenantMetrics(deps.metrics.registry);
  const abort = new AbortController();
  const tenants = new Map<string, Tenant>();
  const globalCacheSize = deps.metrics.cacheSize;
  // Tenants start together: their first loads take turns (each load is a bundle worker and an engine load worker).
  const slots = new LoadSlots();
  for (const tc of t.list) tenants.set(tc.name, startTenant(config, t, tc, metrics, abort.signal, slots, deps));
  // Each DecisionCache reports itself as the instance's cache size: report the sum of all of them instead.
  deps.metrics.cacheSize = () => sumCacheSizes(globalCacheSize?.() ?? null, tenants);
  const index = new TenantSelectorIndex(
    t.selector,
    t.list.map((tc) => ({ match: tc.match, tenant: tenants.get(tc.name)! })),
  );
  const refreshStates = (): void => {
    const serving = [...tenants.values()].filter((x) => x.policy.current !== null).length;
    metrics.tenants.set({ state: 'serving' }, serving);
    metrics.tenants.set({ state: 'waiting' }, tenants.size - serving);
  };
  refreshStates();
  for (const x of tenants.values()) x.policy.on('swap', refreshStates);
  return {
    tenants,
    metrics,
    route(message: CheckRequest, spiffe: SPIFFEInput | null): RoutedTenant {
      const tenant = index.find(message, spiffe);
      if (tenant === undefined)
        throw new VerdictError('ERR_TENANT_UNKNOWN', `no tenant matches the ${t.selector.from} of this request`, {
          httpStatus: t.unknownStatus,
        });
      return tenant;
    },
    observe(record: DecisionRecord, decision: Decision): void {
      if (record.tenant === undefined || record.kind !== undefined) return;
      metrics.decisions.inc({ tenant: record.tenant, result: decision.allowed ? 'allow' : 'deny', reason: decision.reason });
    },
    async stop() {
      abort.abort();
      for (const x of tenants.values()) {
        await x.loader.stop();
        await x.started;
        x.policy.current?.engine.close();
      }
    },
  };
}

function startTenant(
  config: Config,
  t: TenantsConfig,
  tc: TenantConfig,
  metrics: TenantMetrics,
  signal: AbortSignal,
  slots: LoadSlots,
  deps: Deps,
): Tenant {
  const policy = new PolicyStore(engineOptionsOf(config));
  wireTenantTelemetry(tc.name, policy, metrics, deps.logger);
  // Its own cache: keyed by its own bundles and invalidated by its own swaps only.
  const cacheConfig = { ...config, cache: { ...config.cache, maxEntries: t.cache.maxEntries, maxBytes: t.cache.maxBytes } };
  const cache = config.cache.enabled ? setUpDecisionCache(cacheConfig, { policy, ...deps, opa: toolPath('opa') }) : null;
  const loader = loaderFromSection(tc.bundles, policy, deps.clock, `tenant ${tc.name}`);
  loader.on('source-error', (e) => {
    metrics.bundleLoads.inc({ tenant: tc.name, outcome: 'source-error', reason: e.code });
    deps.logger.warn({ tenant: tc.name, code: e.code, msg: e.message }, 'tenant bundle source failed');
  });
  const started = startLoaderInBackground(
    loader,
    signal,
    (err, retryInMs) => deps.logger.warn({ tenant: tc.name, code: err.code, retryInMs }, 'tenant bundle not loaded yet; retrying'),
    slots,
  );
  return { name: tc.name, policy, cache, loader, started };
}

function sumCacheSizes(
  global: { entries: number; bytes: number } | null,
  tenants: ReadonlyMap<string, Tenant>,
): { entries: number; bytes: number } {
  const total = { entries: global?.entries ?? 0, bytes: global?.bytes ?? 0 };
  for (const t of tenants.values()) {
    const s = t.cache?.store.stats();
    total.entries += s?.entries ?? 0;
    total.bytes += s?.bytes ?? 0;
  }
  return total;
}

function wireTenantTelemetry(tenant: string, policy: PolicyStore, metrics: TenantMetrics, logger: Logger): void {
  policy.on('swap', ({ previous, current }) => {
    if (previous) {
      const p = previous.bundle;
      metrics.bundleInfo.remove({ tenant, name: p.name, revision: p.revision, sha256: p.sha256, engine: previous.engine.kind });
    }
    const { name, revision, sha256 } = current.bundle;
    metrics.bundleInfo.set({ tenant, name, revision, sha256, engine: current.engine.kind }, 1);
    metrics.bundleLoads.inc({ tenant, outcome: 'activated', reason: 'OK' });
    logger.info({ tenant, bundle: name, revision, sha256, generation: current.generation }, 'tenant bundle active');
  });
  policy.on('rejected', (err) => {
    metrics.bundleLoads.inc({ tenant, outcome: 'rejected', reason: err.code });
    logger.error({ tenant, code: err.code, msg: err.message }, 'tenant bundle refused');
  });
}
