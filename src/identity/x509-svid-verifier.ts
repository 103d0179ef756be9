import type { X509Certificate } from 'node:crypto';
import { VerdictError } from '../errors';
import type { BundleSource } from './bundle-source';
import { basicConstraintsCA, certificateExtensions, keyUsageBits, subjectAltNameURIs, type KeyUsageBits } from './der-extensions';
import { parseSPIFFEID, type SPIFFEID } from './spiffe-id';
import type { VerifiedSVID } from './verified-svid';

/**
 * X509-SVID verification (X509-SVID spec §4, §5). Node's `crypto.X509Certificate` (OpenSSL) does the
 * parsing, issuer matching (`checkIssued`) and signature checks — fast, sync and maintained with Node. It does
 * not expose the KeyUsage bits or the SAN list as structured data (only as display text), so those extensions
 * are read by a small bounds-checked DER reader (der-extensions.ts). @peculiar/x509 and pkijs were weighed:
 * both decode whole certificates in JavaScript (about 1 ms here), @peculiar/x509 also needs a global
 * reflect-metadata polyfill; the tests use @peculiar/x509 only to mint certificates.
 */
export interface X509SVIDVerifyOptions {
  /** The injected clock's now. */
  nowMs: number;
  /** Longest path accepted (leaf + intermediates), a bound on work for untrusted input. */
  maxPathLength?: number;
}

const DEFAULT_MAX_PATH = 8;

export function verifyX509SVID(chain: readonly X509Certificate[], source: BundleSource, options: X509SVIDVerifyOptions): VerifiedSVID {
  const leaf = chain[0];
  if (!leaf) throw new VerdictError('ERR_SVID_MALFORMED', 'no certificate presented');
  const maxPath = options.maxPathLength ?? DEFAULT_MAX_PATH;
  if (chain.length > maxPath) throw new VerdictError('ERR_SVID_MALFORMED', `chain longer than ${maxPath} certificates`);
  const spiffeID = leafSPIFFEID(leaf);
  checkLeafConstraints(leaf);
  checkValidity(leaf, options.nowMs, 'SVID');
  const bundle = source.bundleForTrustDomain(spiffeID.trustDomain);
  // X509-SVID §5.1: the bundle of the SVID's own trust domain is the only set of roots.
  if (!bundle || bundle.x509Authorities.length === 0) {
    throw new VerdictError('ERR_SVID_UNTRUSTED', `no X.509 authorities for trust domain "${spiffeID.trustDomain}"`);
  }
  const validUntilMs = buildPath(leaf, chain.slice(1), bundle.x509Authorities, options.nowMs, maxPath);
  return { spiffeID, svidType: 'x509', expiresAtMs: notAfterMs(leaf), validUntilMs, bundle };
}

/** X509-SVID §2: exactly one URI SAN, and it is a SPIFFE ID. */
function leafSPIFFEID(leaf: X509Certificate): SPIFFEID {
  const uris = decode(leaf).uris;
  if (uris.length !== 1) throw new VerdictError('ERR_SVID_BAD_SAN', `leaf has ${uris.length} URI SANs; exactly one is required`);
  try {
    return parseSPIFFEID(uris[0] as string);
  } catch (err) {
    throw new VerdictError('ERR_SVID_BAD_SAN', `leaf URI SAN: ${(err as Error).message}`, { cause: err });
  }
}

/** X509-SVID §4.1 (leaf is not a CA) and §4.3 (digitalSignature set; keyCertSign and cRLSign unset). */
function checkLeafConstraints(leaf: X509Certificate): void {
  const { ca, keyUsage } = decode(leaf);
  if (ca) throw new VerdictError('ERR_SVID_BAD_KEY_USAGE', 'leaf SVID has the CA flag set');
  if (keyUsage === null) throw new VerdictError('ERR_SVID_BAD_KEY_USAGE', 'leaf SVID lacks the key usage extension');
  if (!keyUsage.digitalSignature) {
    throw new VerdictError('ERR_SVID_BAD_KEY_USAGE', 'leaf SVID key usage lacks digitalSignature');
  }
  if (keyUsage.keyCertSign || keyUsage.cRLSign) {
    throw new VerdictError('ERR_SVID_BAD_KEY_USAGE', 'leaf SVID key usage has keyCertSign or cRLSign');
  }
}

/** X509-SVID §3.2, §4.1, §4.3: a signing certificate is a CA with keyCertSign. */
function checkSigningCertificate(cert: X509Certificate): void {
  const { ca, keyUsage } = decode(cert);
  if (!ca || (keyUsage !== null && !keyUsage.keyCertSign)) {
    throw new VerdictError('ERR_SVID_UNTRUSTED', `intermediate ${cert.subject} is not a signing certificate`);
  }
}

/**
 * RFC 5280 path building, as X509-SVID §5.1 asks: from the leaf, through presented intermediates, to an
 * authority of the bundle; every signature checked, every certificate valid now. Returns the earliest
 * notAfter on the path.
 */
function buildPath(
  leaf: X509Certificate,
  intermediates: X509Certificate[],
  roots: readonly X509Certificate[],
  nowMs: number,
  maxPath: number,
): number {
  let current = leaf;
  let validUntilMs = notAfterMs(leaf);
  for (let depth = 0; depth < maxPath; depth++) {
    const root = roots.find((r) => current.checkIssued(r));
    if (root) {
      if (!current.verify(root.publicKey)) throw new VerdictError('ERR_SVID_SIGNATURE', `signature of ${current.subject} does not verify`);
      checkValidity(root, nowMs, 'trust bundle authority');
      return Math.min(validUntilMs, notAfterMs(root));
    }
    const index = intermediates.findIndex((c) => current.checkIssued(c));
    const issuer = intermediates[index];
    if (!issuer) throw new VerdictError('ERR_SVID_UNTRUSTED', `no trusted issuer for ${current.subject || 'the leaf'}`);
    if (!current.verify(issuer.publicKey)) throw new VerdictError('ERR_SVID_SIGNATURE', `signature of ${current.subject} does not verify`);
    checkSigningCertificate(issuer);
    checkValidity(issuer, nowMs, 'intermediate');
    validUntilMs = Math.min(validUntilMs, notAfterMs(issuer));
    intermediates = intermediates.filter((_, i) => i !== index);
    current = issuer;
  }
  throw new VerdictError('ERR_SVID_UNTRUSTED', `no path to the bundle within ${maxPath} certificates`);
}

function checkValidity(cert: X509Certificate, nowMs: number, what: string): void {
  if (nowMs < Date.parse(cert.validFrom)) throw new VerdictError('ERR_SVID_NOT_YET_VALID', `${what} is valid from ${cert.validFrom}`);
  if (nowMs > notAfterMs(cert)) throw new VerdictError('ERR_SVID_EXPIRED', `${what} expired at ${cert.validTo}`);
}

function notAfterMs(cert: X509Certificate): number {
  return Date.parse(cert.validTo);
}

interface DecodedExtensions {
  uris: string[];
  ca: boolean;
  /** null when the extension is absent. */
  keyUsage: KeyUsageBits | null;
}

/** The three extensions the spec rules read; decoded once per certificate object. */
const decoded = new WeakMap<X509Certificate, DecodedExtensions>();
function decode(cert: X509Certificate): DecodedExtensions {
  let d = decoded.get(cert);
  if (!d) {
    try {
      d = decodeExtensions(cert.raw);
    } catch (err) {
      throw new VerdictError('ERR_SVID_MALFORMED', 'certificate extensions do not decode', { cause: err });
    }
    decoded.set(cert, d);
  }
  return d;
}

// DER content bytes of id-ce-subjectAltName (2.5.29.17), id-ce-basicConstraints (2.5.29.19), id-ce-keyUsage (2.5.29.15).
const OID_SUBJECT_ALT_NAME = '551d11';
const OID_BASIC_CONSTRAINTS = '551d13';
const OID_KEY_USAGE = '551d0f';

function decodeExtensions(der: Buffer): DecodedExtensions {
  const out: DecodedExtensions = { uris: [], ca: false, keyUsage: null };
  const seen = new Set<string>();
  for (const ext of certificateExtensions(der)) {
    // RFC 5280 §4.2: a certificate must not include more than one instance of an extension.
    if (seen.has(ext.oidHex)) throw new Error(`duplicate extension ${ext.oidHex}`);
    seen.add(ext.oidHex);
    const value = ext.value;
    if (ext.oidHex === OID_SUBJECT_ALT_NAME) {
      out.uris = subjectAltNameURIs(value);
    } else if (ext.oidHex === OID_BASIC_CONSTRAINTS) {
      out.ca = basicConstraintsCA(value);
    } else if (ext.oidHex === OID_KEY_USAGE) {
      out.keyUsage = keyUsageBits(value);
    }
  }
  return out;
}
