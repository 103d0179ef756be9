import { VerdictError } from '../errors';
import { readConfiguredFile } from '../policy/bundle-file-read';
import type { BundleSource } from './bundle-source';
import { parseTrustDomain } from './spiffe-id';
import { parseBundleFile, type TrustBundle } from './trust-bundle';

export interface StaticBundleFile {
  trustDomain: string;
  /** PEM certificates or a SPIFFE bundle (JWK set with `use`). */
  path: string;
}

/** Bundles read once from files: for users without SPIRE, for federation, and the embedded default. */
export class StaticBundleSource implements BundleSource {
  private readonly bundles = new Map<string, TrustBundle>();

  constructor(bundles: Iterable<TrustBundle>) {
    for (const b of bundles) {
      if (this.bundles.has(b.trustDomain)) throw new VerdictError('ERR_CONFIG', `two static bundles for trust domain ${b.trustDomain}`);
      this.bundles.set(b.trustDomain, b);
    }
  }

  static fromFiles(files: readonly StaticBundleFile[]): StaticBundleSource {
    return new StaticBundleSource(
      files.map(({ trustDomain, path }) =>
        parseBundleFile(parseTrustDomain(trustDomain), readConfiguredFile(path, 'trust bundle').toString('utf8')),
      ),
    );
  }

  bundleForTrustDomain(trustDomain: string): TrustBundle | undefined {
    return this.bundles.get(trustDomain);
  }
}

/**
 * Several sources (e.g. the Workload API, then static federated bundles): the first that knows wins. A source
 * that cannot answer (stale) does not hide another's bundle; if none knows, its error is raised (deny on doubt).
 */
export class ChainedBundleSource implements BundleSource {
  constructor(private readonly sources: readonly BundleSource[]) {}

  bundleForTrustDomain(trustDomain: string): TrustBundle | undefined {
    let failure: unknown;
    for (const s of this.sources) {
      try {
        const b = s.bundleForTrustDomain(trustDomain);
        if (b) return b;
      } catch (err) {
        failure ??= err;
      }
    }
    if (failure !== undefined) throw failure;
    return undefined;
  }
}
