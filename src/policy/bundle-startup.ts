import type { Clock } from '../clock';
import type { Config } from '../config/schema';
import type { VerdictError } from '../errors';
import { BundleLoader } from './bundle-loader';
import { BundlePersist } from './bundle-persist';
import { FileBundleSource } from './bundle-source-file';
import { bundleSourceFromConfig } from './bundle-source-config';
import { trustFromConfig } from './bundle-verifier';
import type { PolicyStore } from './policy-store';

/**
 * Starts the configured bundle source. With no source but a key or pin configured, the local bundle
 * (policy.bundle, else the embedded default) is followed as a watched file so it is verified too.
 * Returns null when nothing is configured: the caller activates the local bundle as before.
 */
export async function startBundleLoader(
  config: Config,
  store: PolicyStore,
  deps: { clock: Clock; onSourceError: (err: VerdictError) => void },
  localBundlePath: (config: Config) => string,
): Promise<BundleLoader | null> {
  const b = config.bundles;
  const trusting = b.sha256 !== null || b.opaSigning !== null || b.cosign !== null;
  let source = bundleSourceFromConfig(b);
  if (source === null && trusting) {
    const path = localBundlePath(config);
    source = new FileBundleSource({
      path,
      signaturePath: b.cosign !== null ? `${path}.sig` : null,
      debounceMs: 200,
      maxBytes: b.limits.maxCompressedBytes,
    });
  }
  if (source === null) return null;
  const loader = new BundleLoader({
    store,
    source,
    trust: trustFromConfig(b),
    persist: b.persistDir !== null ? new BundlePersist(b.persistDir) : null,
    rejectOlderSignatures: b.rejectOlderSignatures,
    clock: deps.clock,
  });
  loader.on('source-error', deps.onSourceError);
  try {
    await loader.start();
  } catch (err) {
    await loader.stop();
    throw err;
  }
  return loader;
}
