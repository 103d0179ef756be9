import type { BundlesConfig } from '../config/sections/bundles';
import type { BundleSource } from './bundle-source';
import { stagingFor } from './bundle-staged';
import { FileBundleSource } from './bundle-source-file';
import { HTTPBundleSource } from './bundle-source-http';
import { OCIBundleSource } from './bundle-source-oci';

/** The configured source, or null when none is (the default: serve policy.bundle / the embedded bundle). */
export function bundleSourceFromConfig(config: BundlesConfig): BundleSource | null {
  const s = config.source;
  if (s === null) return null;
  const wantsSignature = config.cosign !== null;
  const maxBytes = config.limits.maxCompressedBytes;
  const staging = stagingFor(config.limits, config.loadTimeoutMs);
  switch (s.type) {
    case 'file':
      return new FileBundleSource({
        path: s.path,
        signaturePath: s.signaturePath ?? (wantsSignature ? `${s.path}.sig` : null),
        debounceMs: s.debounceMs,
        maxBytes,
        staging,
      });
    case 'http':
      return new HTTPBundleSource({
        url: s.url,
        signatureUrl: s.signatureUrl ?? (wantsSignature ? `${s.url}.sig` : null),
        authorization: s.authorization,
        minDelayMs: s.minDelayMs,
        maxDelayMs: s.maxDelayMs,
        timeoutMs: s.timeoutMs,
        maxBytes,
        staging,
      });
    case 'oci':
      return new OCIBundleSource({
        registry: s.registry,
        repository: s.repository,
        reference: s.reference,
        digest: s.digest,
        authorization: s.authorization,
        minDelayMs: s.minDelayMs,
        maxDelayMs: s.maxDelayMs,
        timeoutMs: s.timeoutMs,
        maxBytes,
        staging,
      });
  }
}
