import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { BundleSource } from './bundle-source';
import type { VerifiedSVID } from './verified-svid';

/**
 * Verified SVIDs by the sha256 of what was presented (certificate field and any extra chain, or token), so
 * a repeat caller costs a hash and a lookup, not a parse and a signature check. An entry ends at
 * `validUntilMs` — the earliest notAfter of every certificate on the validated path (or the JWT's exp) —
 * and as soon as the bundle of its trust domain (the only bundle a path uses, X509-SVID §5.1) is not the
 * one it was verified with: same object, or the same digest (a re-sent bundle keeps its entries).
 */
export class SVIDCache {
  private readonly entries: LRUCache<string, VerifiedSVID>;

  constructor(maxEntries: number) {
    this.entries = new LRUCache({ max: maxEntries });
  }

  /** Key over every presented part, in order (`parts` joined unambiguously). */
  static keyOf(kind: 'x509' | 'jwt', ...parts: readonly (string | Uint8Array)[]): string {
    const hash = createHash('sha256').update(kind);
    for (const part of parts) hash.update(`\0${part.length}\0`).update(part);
    return hash.digest('base64');
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

  /** The cached result, or `verify()`'s, remembered. A failure is not cached (a refusal stays cheap to repeat only by being fast). */
  getOrVerify(key: string, source: BundleSource, nowMs: number, verify: () => VerifiedSVID): VerifiedSVID {
    const hit = this.get(key, source, nowMs);
    if (hit) return hit;
    const svid = verify();
    this.set(key, svid);
    return svid;
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
