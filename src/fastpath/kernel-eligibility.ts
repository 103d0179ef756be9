import { readCacheDeclaration, type CacheDeclaration } from '../cache/cache-declaration';
import { VerdictError } from '../errors';
import type { BundleManifest } from '../policy/bundle';

export type { CacheDeclaration };

/** Input paths whose values the kernel can see (addresses, port) or that verdict binds to an address (identity). */
export const L4_KEY_PATHS: ReadonlySet<string> = new Set([
  'spiffe.id',
  'source_principal',
  'attributes.source.address.socketAddress.address',
  'attributes.destination.address.socketAddress.address',
  'attributes.destination.address.socketAddress.portValue',
]);

/** Paths that name the caller's identity; the kernel sees none of them, only the address they were seen from. */
export const IDENTITY_KEY_PATHS: ReadonlySet<string> = new Set(['spiffe.id', 'source_principal']);

export type Eligibility =
  { eligible: true; declaration: CacheDeclaration } | { eligible: false; why: 'NO_DECLARATION' | 'INVALID_DECLARATION' | 'NOT_L4' };

/**
 * A bundle's decisions may go to the kernel only if its declared cache key (the decision cache's own
 * reader and rules) names L4-visible facts alone: then the kernel can never repeat a verdict that
 * depended on a path or a header.
 */
export function kernelEligibility(manifest: BundleManifest): Eligibility {
  let declaration: CacheDeclaration | null;
  try {
    declaration = readCacheDeclaration(manifest);
  } catch (err) {
    if (err instanceof VerdictError) return { eligible: false, why: 'INVALID_DECLARATION' };
    throw err;
  }
  if (declaration === null) return { eligible: false, why: 'NO_DECLARATION' };
  if (!declaration.keyPaths.every((p) => L4_KEY_PATHS.has(p))) return { eligible: false, why: 'NOT_L4' };
  return { eligible: true, declaration };
}
