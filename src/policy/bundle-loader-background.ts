import type { Clock } from '../clock';
import type { BundlesConfig } from '../config/sections/bundles';
import { VerdictError, toVerdictError } from '../errors';
import { BundleLoader } from './bundle-loader';
import { persistFromConfig } from './bundle-persist';
import { abortableDelay } from './bundle-source';
import { bundleSourceFromConfig } from './bundle-source-config';
import type { LoadSlots } from './load-slots';
import { trustFromConfig } from './bundle-verifier';
import type { PolicyStore } from './policy-store';

const RETRY_INITIAL_MS = 1_000;
const RETRY_MAX_MS = 60_000;

/**
 * Starts a loader whose first bundle is not needed to serve (a shadow candidate, one tenant among many):
 * a first fetch or activation that fails is retried with doubling backoff until it succeeds or `signal`
 * aborts, and never throws. The loader then follows its source as usual. With `slots`, each attempt (the
 * first fetch and activation) waits for one of them and holds it until it ends.
 */
export async function startLoaderInBackground(
  loader: BundleLoader,
  signal: AbortSignal,
  onRetry: (err: VerdictError, retryInMs: number) => void,
  slots?: LoadSlots,
): Promise<void> {
  let delayMs = RETRY_INITIAL_MS;
  while (!signal.aborted) {
    // Each attempt holds a slot when given one (many loaders starting together: the tenants).
    const release = slots ? await slots.acquire() : null;
    // Stopped while it waited: hand the slot on at once (a stop never waits for the queue to load).
    if (signal.aborted) return release?.();
    try {
      await loader.start();
      return;
    } catch (err) {
      release?.();
      onRetry(toVerdictError(err), delayMs);
      await abortableDelay(delayMs, signal);
      delayMs = Math.min(delayMs * 2, RETRY_MAX_MS);
    } finally {
      release?.();
    }
  }
}

/** A loader for any section shaped like `bundles` (a shadow candidate, a tenant): its own source and trust. */
export function loaderFromSection(section: BundlesConfig, store: PolicyStore, clock: Clock, what: string): BundleLoader {
  const source = bundleSourceFromConfig(section);
  if (source === null) throw new VerdictError('ERR_CONFIG', `${what} needs a bundle source`);
  return new BundleLoader({
    store,
    source,
    trust: trustFromConfig(section),
    persist: persistFromConfig(section),
    rejectOlderSignatures: section.rejectOlderSignatures,
    clock,
  });
}
