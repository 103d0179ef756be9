import type { X509Certificate } from 'node:crypto';
import { VerdictError } from '../errors';
import type { BundleSource } from './bundle-source';
import { certificateInfo, type CertificateInfo } from './certificate-info';
import type { IntermediateSource } from './intermediate-source';
import { parseSPIFFEID, type SPIFFEID } from './spiffe-id';
import type { VerifiedSVID } from './verified-svid';
import { buildCertificatePath, validityFailure } from './x509-path-builder';

/**
 * X509-SVID verification (X509-SVID spec §4, §5; RFC 5280 §6.1 path validation). Node's
 * `crypto.X509Certificate` (OpenSSL) parses the certificates and checks signatures — fast, sync and
 * maintained with Node. It shows the extensions only as display text, so they are read by a small
 * bounds-checked DER reader (der-extensions.ts, certificate-info.ts). @peculiar/x509 and pkijs were weighed:
 * both decode whole certificates in JavaScript (about 1 ms here); the tests use @peculiar/x509 only to mint.
 */
export interface X509SVIDVerifyOptions {
  /** The injected clock's now. */
  nowMs: number;
  /** Longest path accepted below the trust anchor (leaf + intermediates), a bound on work for untrusted input. */
  maxPathLength?: number;
  /** Most issuer candidates examined per verification. */
  maxCandidates?: number;
  /**
   * More path-building candidates besides the presented ones (verdict's own SVID chain, XFCC `Chain=`, a
   * file). Untrusted: each one used must itself chain to the bundle and pass every rule.
   */
  intermediates?: IntermediateSource;
}

export const DEFAULT_MAX_PATH_LENGTH = 8;
export const DEFAULT_MAX_CANDIDATES = 32;
/** Candidates beyond these many are not considered (the pool itself is bounded). */
const MAX_POOL = 256;

let pathValidations = 0;

/** Full path validations run so far in this process (a cache hit runs none). */
export function pathValidationCount(): number {
  return pathValidations;
}

export function verifyX509SVID(chain: readonly X509Certificate[], source: BundleSource, options: X509SVIDVerifyOptions): VerifiedSVID {
  const first = chain[0];
  if (!first) throw new VerdictError('ERR_SVID_MALFORMED', 'no certificate presented');
  const maxPath = options.maxPathLength ?? DEFAULT_MAX_PATH_LENGTH;
  if (chain.length > maxPath) throw new VerdictError('ERR_SVID_MALFORMED', `chain longer than ${maxPath} certificates`);
  const leaf = certificateInfo(first);
  const spiffeID = leafSPIFFEID(leaf);
  checkLeaf(leaf, options.nowMs);
  const bundle = source.bundleForTrustDomain(spiffeID.trustDomain);
  // X509-SVID §5.1: the bundle of the SVID's own trust domain is the only set of roots.
  if (!bundle || bundle.x509Authorities.length === 0) {
    throw new VerdictError('ERR_SVID_UNTRUSTED', `no X.509 authorities for trust domain "${spiffeID.trustDomain}"`);
  }
  pathValidations++;
  const path = buildCertificatePath(
    leaf,
    candidatePool(chain.slice(1), options.intermediates?.intermediatesFor(spiffeID.trustDomain) ?? []),
    bundle.x509Authorities.map(certificateInfo),
    {
      nowMs: options.nowMs,
      maxPathLength: maxPath,
      maxCandidates: options.maxCandidates ?? DEFAULT_MAX_CANDIDATES,
    },
  );
  return { spiffeID, svidType: 'x509', expiresAtMs: leaf.notAfterMs, validUntilMs: path.validUntilMs, bundle };
}

/** Presented intermediates first, then the extra ones; duplicates once; bounded. */
function candidatePool(presented: readonly X509Certificate[], extra: readonly X509Certificate[]): CertificateInfo[] {
  const seen = new Set<string>();
  const out: CertificateInfo[] = [];
  for (const cert of [...presented, ...extra]) {
    if (out.length >= MAX_POOL) break;
    const info = certificateInfo(cert);
    if (seen.has(info.fingerprint)) continue;
    seen.add(info.fingerprint);
    out.push(info);
  }
  return out;
}

/** X509-SVID §2: exactly one URI SAN, a SPIFFE ID; §3.1: a leaf's ID has a path (the bare trust domain names no workload). */
function leafSPIFFEID(leaf: CertificateInfo): SPIFFEID {
  const { uris } = leaf.altNames;
  if (uris.length !== 1) throw new VerdictError('ERR_SVID_BAD_SAN', `leaf has ${uris.length} URI SANs; exactly one is required`);
  let id: SPIFFEID;
  try {
    id = parseSPIFFEID(uris[0] as string);
  } catch (err) {
    throw new VerdictError('ERR_SVID_BAD_SAN', `leaf URI SAN: ${(err as Error).message}`, { cause: err });
  }
  if (id.path === '') throw new VerdictError('ERR_SVID_BAD_SAN', `leaf SPIFFE ID ${id.id} has no path (X509-SVID §3.1)`);
  return id;
}

/** X509-SVID §4.1 (leaf is not a CA), §4.3 (digitalSignature; no keyCertSign, no cRLSign), RFC 5280 §4.2, §6.1.3 (a)(2). */
function checkLeaf(leaf: CertificateInfo, nowMs: number): void {
  if (leaf.unknownCritical.length > 0) {
    throw new VerdictError('ERR_SVID_CRITICAL_EXTENSION', `leaf SVID has unknown critical extension(s) ${leaf.unknownCritical.join(', ')}`);
  }
  const { ca, keyUsage } = leaf;
  if (ca) throw new VerdictError('ERR_SVID_BAD_KEY_USAGE', 'leaf SVID has the CA flag set');
  if (keyUsage === null) throw new VerdictError('ERR_SVID_BAD_KEY_USAGE', 'leaf SVID lacks the key usage extension');
  if (!keyUsage.digitalSignature) throw new VerdictError('ERR_SVID_BAD_KEY_USAGE', 'leaf SVID key usage lacks digitalSignature');
  if (keyUsage.keyCertSign || keyUsage.cRLSign)
    throw new VerdictError('ERR_SVID_BAD_KEY_USAGE', 'leaf SVID key usage has keyCertSign or cRLSign');
  const validity = validityFailure(leaf, nowMs);
  if (validity) throw validity;
}
