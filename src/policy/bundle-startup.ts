import type { Clock } from '../clock';
import type { Config } from '../config/schema';
import type { VerdictError } from '../errors';
import type { ActivePolicy } from './policy-store';
import { BundleLoader } from './bundle-loader';
import { persistFromConfig } from './bundle-persist';
import { stagingFor } from './bundle-staged';
import { FileBundleSource } from './bundle-source-file';
import { bundleSourceFromConfig } from './bundle-source-config';
import { trustFromConfig } from './bundle-verifier';
import type { PolicyStore } from './policy-store';

export interface BundleStartupDeps {
  clock: Clock;
  onSourceError: (err: VerdictError) => void;
  /** At start the source gave no usable bundle (why) and the persisted last good one serves. */
  onPersisted: (active: ActivePolicy, why: VerdictError) => void;
}

/**
 * Starts the configured bundle source. With no source but a key or pin configured, the local bundle
 * (policy.bundle, else the embedded default) is followed as a watched file so it is verified too. With
 * neither, the local bundle is activated once and null is returned — unless it is refused, in which case
 * it is followed as a watched file too, so fixing it heals the server without a restart.
 *
 * A bundle never makes start-up fail: with no good bundle the store stays empty (NOT_SERVING) and the
 * loader keeps following its source.
 */
export async function startBundleLoader(
  config: Config,
  store: PolicyStore,
  deps: BundleStartupDeps,
  localBundlePath: (config: Config) => string,
): Promise<BundleLoader | null> {
  const b = config.bundles;
  const trusting = b.sha256 !== null || b.opaSigning !== null || b.cosign !== null;
  let source = bundleSourceFromConfig(b);
  if (source === null && !trusting) {
    const path = localBundlePath(config);
    const activated = await store.activateFile(path, b.limits).catch(() => null);
    if (activated !== null) return null;
  }
  if (source === null) {
    const path = localBundlePath(config);
    source = new FileBundleSource({
      path,
      signaturePath: b.cosign !== null ? `${path}.sig` : null,
      debounceMs: 200,
      maxBytes: b.limits.maxCompressedBytes,
      staging: stagingFor(b.limits, b.loadTimeoutMs),
    });
  }
  const loader = new BundleLoader({
    store,
    source,
    trust: trustFromConfig(b),
    persist: persistFromConfig(b),
    rejectOlderSignatures: b.rejectOlderSignatures,
    clock: deps.clock,
  });
  loader.on('source-error', deps.onSourceError);
  loader.on('persisted', deps.onPersisted);
  await loader.start();
  return loader;
}
