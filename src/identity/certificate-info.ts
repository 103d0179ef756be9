import type { KeyObject, X509Certificate } from 'node:crypto';
import { VerdictError } from '../errors';
import {
  authorityKeyIdentifier,
  basicConstraints,
  certificateExtensions,
  certificateNames,
  keyUsageBits,
  nameConstraints,
  subjectAltNames,
  subjectKeyIdentifier,
  type GeneralNames,
  type KeyUsageBits,
  type NameConstraintSet,
} from './der-extensions';
import { keyLimitProblem } from './key-limits';

/**
 * What RFC 5280 path validation reads from one certificate, decoded once per certificate object: OpenSSL
 * (node:crypto) has already parsed the structure; the extensions it shows only as text are read by the
 * bounded DER reader in der-extensions.ts.
 */
export interface CertificateInfo {
  readonly cert: X509Certificate;
  /** Raw DER of issuer and subject Names, hex: RFC 5280 §6.1.3 (a)(4) name chaining, compared byte for byte. */
  readonly issuerName: string;
  readonly subjectName: string;
  /** Issuer and subject are the same name (RFC 5280 §6.1: self-issued; not counted for path length). */
  readonly selfIssued: boolean;
  readonly ca: boolean;
  readonly pathLen: number | null;
  /** null when the extension is absent. */
  readonly keyUsage: KeyUsageBits | null;
  readonly altNames: GeneralNames;
  readonly subjectKeyID: string | null;
  readonly authorityKeyID: string | null;
  readonly nameConstraints: NameConstraintSet | null;
  /** OIDs (hex) of critical extensions verdict does not process (RFC 5280 §4.2: such a certificate is refused). */
  readonly unknownCritical: readonly string[];
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  /** The key to check the signatures this certificate's subject made, or why verdict will not use it. */
  readonly issuerKey: IssuerKey;
  /** sha256 fingerprint, to recognise the same certificate in two places (loops, duplicates). */
  readonly fingerprint: string;
}

export type IssuerKey = { readonly key: KeyObject } | { readonly unusable: string };

/** The key to check the signatures `cert`'s subject made, within the bounds of key-limits.ts. */
function issuerKeyOf(cert: X509Certificate): IssuerKey {
  let key: KeyObject;
  try {
    key = cert.publicKey;
  } catch (err) {
    // OpenSSL cannot load it (an unknown algorithm, an EC point off the curve, a malformed RSA key).
    return { unusable: `does not load (${(err as Error).message})` };
  }
  const problem = keyLimitProblem(key);
  return problem === null ? { key } : { unusable: problem };
}

// DER content bytes of the extension OIDs (RFC 5280 §4.2.1).
const OID = {
  subjectAltName: '551d11',
  basicConstraints: '551d13',
  keyUsage: '551d0f',
  subjectKeyIdentifier: '551d0e',
  authorityKeyIdentifier: '551d23',
  nameConstraints: '551d1e',
  extKeyUsage: '551d25',
  crlDistributionPoints: '551d1f',
  authorityInfoAccess: '2b06010505070101',
} as const;

/**
 * Extensions whose meaning verdict applies or which do not bear on path validity (EKU: X509-SVID §4.4 leaves
 * its use to the application; CRL DP / AIA: locations, no constraint). Any other critical one is refused.
 */
const UNDERSTOOD = new Set<string>(Object.values(OID));

const infos = new WeakMap<X509Certificate, CertificateInfo>();

export function certificateInfo(cert: X509Certificate): CertificateInfo {
  let info = infos.get(cert);
  if (!info) {
    try {
      info = decode(cert);
    } catch (err) {
      if (err instanceof VerdictError) throw err;
      throw new VerdictError(
        'ERR_SVID_MALFORMED',
        `certificate ${cert.subject || '(no subject)'} does not decode: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    infos.set(cert, info);
  }
  return info;
}

function decode(cert: X509Certificate): CertificateInfo {
  const der = cert.raw;
  const names = certificateNames(der);
  const out = {
    altNames: { uris: [], dnsNames: [], others: 0 } as GeneralNames,
    ca: false,
    pathLen: null as number | null,
    keyUsage: null as KeyUsageBits | null,
    subjectKeyID: null as string | null,
    authorityKeyID: null as string | null,
    nameConstraints: null as NameConstraintSet | null,
  };
  const unknownCritical: string[] = [];
  const seen = new Set<string>();
  for (const ext of certificateExtensions(der)) {
    // RFC 5280 §4.2: a certificate must not include more than one instance of an extension.
    if (seen.has(ext.oidHex)) throw new Error(`duplicate extension ${ext.oidHex}`);
    seen.add(ext.oidHex);
    if (ext.critical && !UNDERSTOOD.has(ext.oidHex)) unknownCritical.push(ext.oidHex);
    applyExtension(out, ext.oidHex, ext.value);
  }
  const notBeforeMs = Date.parse(cert.validFrom);
  const notAfterMs = Date.parse(cert.validTo);
  // A time OpenSSL cannot read (a GeneralizedTime without Z, a UTCTime that is not digits) shows as "Bad time
  // value": NaN would pass every validity comparison, and never expire a cache entry.
  if (!Number.isFinite(notBeforeMs) || !Number.isFinite(notAfterMs))
    throw new Error(`validity does not decode (notBefore ${JSON.stringify(cert.validFrom)}, notAfter ${JSON.stringify(cert.validTo)})`);
  const issuerName = names.issuer.toString('hex');
  const subjectName = names.subject.toString('hex');
  let issuerKey: IssuerKey | undefined;
  return Object.freeze({
    cert,
    issuerName,
    subjectName,
    selfIssued: issuerName === subjectName,
    ...out,
    unknownCritical: Object.freeze(unknownCritical),
    notBeforeMs,
    notAfterMs,
    // Only issuers' keys are ever used: a leaf never pays for building its KeyObject.
    get issuerKey(): IssuerKey {
      return (issuerKey ??= issuerKeyOf(cert));
    },
    fingerprint: cert.fingerprint256,
  });
}

type Mutable = {
  altNames: GeneralNames;
  ca: boolean;
  pathLen: number | null;
  keyUsage: KeyUsageBits | null;
  subjectKeyID: string | null;
  authorityKeyID: string | null;
  nameConstraints: NameConstraintSet | null;
};

function applyExtension(out: Mutable, oid: string, value: Buffer): void {
  switch (oid) {
    case OID.subjectAltName:
      out.altNames = subjectAltNames(value);
      break;
    case OID.basicConstraints: {
      const bc = basicConstraints(value);
      out.ca = bc.ca;
      out.pathLen = bc.pathLen;
      break;
    }
    case OID.keyUsage:
      out.keyUsage = keyUsageBits(value);
      break;
    case OID.subjectKeyIdentifier:
      out.subjectKeyID = subjectKeyIdentifier(value);
      break;
    case OID.authorityKeyIdentifier:
      out.authorityKeyID = authorityKeyIdentifier(value);
      break;
    case OID.nameConstraints:
      out.nameConstraints = nameConstraints(value);
      break;
  }
}
