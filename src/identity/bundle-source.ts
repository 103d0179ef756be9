import type { TrustBundle } from './trust-bundle';

/**
 * What verifiers depend on: one method, like go-spiffe's bundle sources. Returns undefined when the source
 * knows no bundle for the trust domain; throws ERR_BUNDLE_UNAVAILABLE when it cannot answer (not yet
 * synced, or stale).
 */
export interface BundleSource {
  bundleForTrustDomain(trustDomain: string): TrustBundle | undefined;
}
