import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { BundleSource } from './bundle-source';
import type { VerifiedSVID } from './verified-svid';

/**
 * Verified SVIDs by the sha256 of the presented document (certificate field or token), so a repeat
 * caller costs a hash and a lookup, not a parse and a signature check. An entry holds until the SVID
 * (or a certificate on its path) expires, or until the bundle it chained to is replaced.
 */
export class SVIDCache {
  private readonly entries: LRUCache<string, VerifiedSVID>;

  constructor(maxEntries: number) {
    this.entries = new LRUCache({ max: maxEntries });
  }

  static keyOf(kind: 'x509' | 'jwt', document: string): string {
    return createHash('sha256').update(kind).update('\0').update(document).digest('base64');
  }

  get(key: string, source: BundleSource, nowMs: number): VerifiedSVID | undefined {
    const hit = this.entries.get(key);
    if (!hit) return undefined;
    if (nowMs > hit.validUntilMs || !sameBundle(hit, source)) {
      this.entries.delete(key);
      return undefined;
    }
    return hit;
  }

  set(key: string, svid: VerifiedSVID): void {
    this.entries.set(key, svid);
  }

  get size(): number {
    return this.entries.size;
  }
}

/** The bundle the entry was verified with is still the trust domain's bundle (same object or same keys). */
function sameBundle(hit: VerifiedSVID, source: BundleSource): boolean {
  const now = source.bundleForTrustDomain(hit.spiffeID.trustDomain);
  return now === hit.bundle || (now !== undefined && now.digest === hit.bundle.digest);
}
