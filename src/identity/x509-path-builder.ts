import { LRUCache } from 'lru-cache';
import { VerdictError } from '../errors';
import type { CertificateInfo } from './certificate-info';
import { nameConstraintViolation } from './name-constraints';

export interface PathBuildOptions {
  /** The injected clock's now. */
  nowMs: number;
  /** Longest path accepted below the trust anchor (leaf + intermediates). */
  maxPathLength: number;
  /** Most issuer candidates examined in one verification (bounded work for hostile chains). */
  maxCandidates: number;
}

/** A validated path, leaf first, trust anchor last; valid until the earliest notAfter on it. */
export interface CertificatePath {
  readonly certificates: readonly CertificateInfo[];
  readonly validUntilMs: number;
}

let signatureChecks = 0;
let nameConstraintChecks = 0;

/**
 * Signatures already verified, by (certificate, issuer) sha256 fingerprints: bytes that verified once verify
 * forever, so the intermediate → root link every caller of a domain shares costs one check per process.
 * Only successes are kept; bounded.
 */
const verifiedLinks = new LRUCache<string, true>({ max: 10_000 });

/** Signature verifications done so far in this process (a cached verification adds none). */
export function signatureCheckCount(): number {
  return signatureChecks;
}

/** Certificates checked against a CA's name constraints so far in this process. */
export function nameConstraintCheckCount(): number {
  return nameConstraintChecks;
}

/**
 * RFC 5280 §6.1 path building and validation, depth first: from the leaf, every certificate that could
 * have issued the current one — each trust anchor, then each intermediate, whose subject is the current
 * issuer name (§6.1.3 (a)(4)), those whose key identifier matches the AKI first (§4.2.1.1: the AKI only
 * orders the search; a leaf without it still tries every candidate, as with two roots of one name after a
 * rotation) — is checked as an issuer, and the first complete path wins. Name constraints are evaluated
 * only on a complete path, every signature on it verified: the constraints of an issuer no trust anchor
 * vouched for never cost work. When no path passes, the first failure met is raised. The leaf's own rules
 * are the caller's (X509-SVID §4); this checks the issuers.
 */
export function buildCertificatePath(
  leaf: CertificateInfo,
  intermediates: readonly CertificateInfo[],
  anchors: readonly CertificateInfo[],
  options: PathBuildOptions,
): CertificatePath {
  const search = new PathSearch(intermediates, anchors, options);
  const path = search.extend([leaf]);
  if (path) return { certificates: path, validUntilMs: Math.min(...path.map((c) => c.notAfterMs)) };
  throw search.firstFailure ?? new VerdictError('ERR_SVID_UNTRUSTED', `no trust bundle authority or intermediate issued ${describe(leaf)}`);
}

class PathSearch {
  firstFailure: VerdictError | null = null;
  private examined = 0;

  constructor(
    private readonly intermediates: readonly CertificateInfo[],
    private readonly anchors: readonly CertificateInfo[],
    private readonly options: PathBuildOptions,
  ) {}

  extend(chain: readonly CertificateInfo[]): CertificateInfo[] | null {
    const current = chain[chain.length - 1] as CertificateInfo;
    for (const [candidate, isAnchor] of this.candidates(current)) {
      if (chain.some((c) => c.fingerprint === candidate.fingerprint)) continue; // a loop
      if (!isAnchor && chain.length >= this.options.maxPathLength) {
        this.fail(new VerdictError('ERR_SVID_UNTRUSTED', `no path to the bundle within ${this.options.maxPathLength} certificates`));
        continue;
      }
      if (++this.examined > this.options.maxCandidates) {
        throw new VerdictError('ERR_SVID_UNTRUSTED', `path search gave up after ${this.options.maxCandidates} issuer candidates`);
      }
      const failure = checkIssuer(candidate, chain, this.options.nowMs);
      if (failure) {
        this.fail(failure);
        continue;
      }
      if (isAnchor) {
        const path = [...chain, candidate];
        const names = nameConstraintsFailure(path);
        if (names) {
          this.fail(names);
          continue;
        }
        return path;
      }
      const found = this.extend([...chain, candidate]);
      if (found) return found;
    }
    return null;
  }

  /** Anchors before intermediates; within each, AKI = SKI first, then unknown, then a mismatch. */
  private candidates(current: CertificateInfo): [CertificateInfo, boolean][] {
    const rank = (c: CertificateInfo): number => {
      if (current.authorityKeyID === null || c.subjectKeyID === null) return 1;
      return current.authorityKeyID === c.subjectKeyID ? 0 : 2;
    };
    const named = (list: readonly CertificateInfo[]): CertificateInfo[] =>
      list.filter((c) => c.subjectName === current.issuerName).sort((a, b) => rank(a) - rank(b));
    return [
      ...named(this.anchors).map((c): [CertificateInfo, boolean] => [c, true]),
      ...named(this.intermediates).map((c): [CertificateInfo, boolean] => [c, false]),
    ];
  }

  private fail(err: VerdictError): void {
    this.firstFailure ??= err;
  }
}

/**
 * Whether `issuer` may sign the last certificate of `chain` (§6.1.3, §6.1.4), cheapest checks first and the
 * signature last; name constraints wait for the complete path (nameConstraintsFailure). Applies to trust
 * anchors too: their constraints bind the path (RFC 5937; as Go and OpenSSL do).
 */
function checkIssuer(issuer: CertificateInfo, chain: readonly CertificateInfo[], nowMs: number): VerdictError | null {
  const who = describe(issuer);
  // §4.2: a certificate with a critical extension the verifier does not process is refused.
  if (issuer.unknownCritical.length > 0)
    return new VerdictError('ERR_SVID_CRITICAL_EXTENSION', `${who} has unknown critical extension(s) ${issuer.unknownCritical.join(', ')}`);
  // §6.1.4 (k), X509-SVID §4.1: a signing certificate is a CA.
  if (!issuer.ca) return new VerdictError('ERR_SVID_BAD_KEY_USAGE', `${who} is not a CA (basicConstraints cA is not set)`);
  // §6.1.4 (n), X509-SVID §4.3: a signing certificate sets keyCertSign.
  if (!issuer.keyUsage?.keyCertSign) return new VerdictError('ERR_SVID_BAD_KEY_USAGE', `${who} key usage lacks keyCertSign`);
  const validity = validityFailure(issuer, nowMs);
  if (validity) return validity;
  // §6.1.4 (l)(m): at most pathLenConstraint non-self-issued intermediates below this CA.
  const below = chain.slice(1).filter((c) => !c.selfIssued).length;
  if (issuer.pathLen !== null && below > issuer.pathLen) {
    return new VerdictError('ERR_SVID_PATH_LENGTH', `${who} allows ${issuer.pathLen} intermediate(s) below it; the path has ${below}`);
  }
  // §6.1.3 (a)(1): the signature verifies with the issuer's public key.
  return signatureFailure(chain[chain.length - 1] as CertificateInfo, issuer);
}

/**
 * A key verdict will not use (certificate-info.ts: it does not load, or its check would cost too much) fails
 * this candidate before any signature check, like a signature that does not verify; the search goes on.
 */
function signatureFailure(cert: CertificateInfo, issuer: CertificateInfo): VerdictError | null {
  const link = `${cert.fingerprint}|${issuer.fingerprint}`;
  if (verifiedLinks.has(link)) return null;
  const issuerKey = issuer.issuerKey;
  if ('unusable' in issuerKey)
    return new VerdictError(
      'ERR_SVID_SIGNATURE',
      `signature of ${describe(cert)} is not checked: the key of ${describe(issuer)} ${issuerKey.unusable}`,
    );
  signatureChecks++;
  if (!cert.cert.verify(issuerKey.key))
    return new VerdictError('ERR_SVID_SIGNATURE', `signature of ${describe(cert)} does not verify with the key of ${describe(issuer)}`);
  verifiedLinks.set(link, true);
  return null;
}

/**
 * §6.1.3 (b)(c) on a complete path (leaf first, anchor last): each CA's constraints bind every certificate
 * below it, except self-issued intermediates. Bounded: at most maxPathLength certificates, each with at most
 * MAX_NAMES_PER_CERTIFICATE names, against at most MAX_NAME_CONSTRAINT_SUBTREES subtrees per CA.
 */
function nameConstraintsFailure(path: readonly CertificateInfo[]): VerdictError | null {
  for (const [j, issuer] of path.entries()) {
    if (!issuer.nameConstraints) continue;
    for (const [i, cert] of path.slice(0, j).entries()) {
      if (i > 0 && cert.selfIssued) continue;
      nameConstraintChecks++;
      const why = nameConstraintViolation(issuer.nameConstraints, cert.altNames);
      if (why) return new VerdictError('ERR_SVID_NAME_CONSTRAINT', `${describe(cert)}: ${why} of ${describe(issuer)}`);
    }
  }
  return null;
}

/** §6.1.3 (a)(2): the certificate is valid at the injected clock's now. */
export function validityFailure(cert: CertificateInfo, nowMs: number): VerdictError | null {
  if (nowMs < cert.notBeforeMs) return new VerdictError('ERR_SVID_NOT_YET_VALID', `${describe(cert)} is valid from ${cert.cert.validFrom}`);
  if (nowMs > cert.notAfterMs) return new VerdictError('ERR_SVID_EXPIRED', `${describe(cert)} expired at ${cert.cert.validTo}`);
  return null;
}

function describe(cert: CertificateInfo): string {
  const subject = cert.cert.subject.replace(/\n/g, ', ');
  return subject ? `certificate "${subject.slice(0, 200)}"` : 'certificate with an empty subject';
}
