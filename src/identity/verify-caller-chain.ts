import { X509Certificate } from 'node:crypto';
import { VerdictError } from '../errors';
import type { BundleSource } from './bundle-source';
import type { IntermediateSource } from './intermediate-source';
import { matchesSPIFFEIDPattern } from './spiffe-id';
import { SVIDCache } from './svid-cache';
import type { VerifiedSVID } from './verified-svid';
import { verifyX509SVID } from './x509-svid-verifier';

export interface CallerChainOptions {
  /** Trust bundles; only the bundle of the leaf's trust domain is used (X509-SVID §5.1). */
  bundles: BundleSource;
  /** Exact SPIFFE IDs or `spiffe://td/prefix/*`; a verified caller outside it is refused. */
  allowedCallers: readonly string[];
  /** The injected clock's now. */
  nowMs: number;
  /** More path-building candidates (e.g. verdict's own SVID chain). */
  intermediates?: IntermediateSource;
  /** Remember results (by the chain's bytes) until the path's earliest expiry or a bundle change. */
  cache?: SVIDCache;
  maxPathLength?: number;
}

/**
 * Verifies the certificate chain a TLS peer presented — leaf first, then its intermediates, as DER or
 * X509Certificate — against the bundles (RFC 5280 §6.1 path validation, X509-SVID rules) and the
 * allow-list. Returns the verified SVID: `spiffeID`, and `validUntilMs`, the earliest notAfter on the
 * validated path (a per-connection check holds until then or a bundle change). Throws a VerdictError:
 * ERR_SVID_* for a chain that does not verify, ERR_SVID_UNTRUSTED for a caller not allowed,
 * ERR_BUNDLE_UNAVAILABLE when bundles are not available.
 */
export function verifyCallerChain(chain: readonly (Uint8Array | X509Certificate)[], options: CallerChainOptions): VerifiedSVID {
  if (chain.length === 0) throw new VerdictError('ERR_SVID_UNTRUSTED', 'no client certificate');
  const maxPath = options.maxPathLength ?? 8;
  if (chain.length > maxPath) throw new VerdictError('ERR_SVID_MALFORMED', `client chain longer than ${maxPath} certificates`);
  const raws = chain.map((c) => (c instanceof X509Certificate ? c.raw : c));
  const verify = (): VerifiedSVID =>
    verifyX509SVID(raws.map(toCertificate), options.bundles, {
      nowMs: options.nowMs,
      maxPathLength: maxPath,
      ...(options.intermediates ? { intermediates: options.intermediates } : {}),
    });
  const svid = options.cache
    ? options.cache.getOrVerify(SVIDCache.keyOf('x509', ...raws), options.bundles, options.nowMs, verify)
    : verify();
  if (!options.allowedCallers.some((p) => matchesSPIFFEIDPattern(svid.spiffeID.id, p))) {
    throw new VerdictError('ERR_SVID_UNTRUSTED', `caller ${svid.spiffeID.id} is not allowed`);
  }
  return svid;
}

function toCertificate(der: Uint8Array): X509Certificate {
  try {
    return new X509Certificate(der);
  } catch (err) {
    throw new VerdictError('ERR_SVID_MALFORMED', 'a client certificate does not parse', { cause: err });
  }
}
