import { createHash, createPublicKey, X509Certificate, type JsonWebKey, type KeyObject } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { VerdictError } from '../errors';
import { quoteShort } from './jws-compact';
import { keyLimitProblem } from './key-limits';

/**
 * The trust bundle of one trust domain (SPIFFE Trust Domain and Bundle §3): X.509 authorities that sign
 * X509-SVIDs and JWT authorities (by key id) that sign JWT-SVIDs. Immutable: a rotation makes a new bundle,
 * so verifiers can cache results against the bundle object they were checked with.
 */
export interface TrustBundle {
  readonly trustDomain: string;
  readonly x509Authorities: readonly X509Certificate[];
  readonly jwtAuthorities: ReadonlyMap<string, KeyObject>;
  /** sha256 over the authorities, to tell a changed bundle from a re-sent one. */
  readonly digest: string;
}

/** Bounds for untrusted bundle input. */
const MAX_BUNDLE_BYTES = 1024 * 1024;
export const MAX_AUTHORITIES = 1000;

function bad(trustDomain: string, why: string, cause?: unknown): VerdictError {
  return new VerdictError('ERR_BUNDLE_UNAVAILABLE', `trust bundle for "${trustDomain}": ${why}`, { cause });
}

export function makeTrustBundle(
  trustDomain: string,
  x509Authorities: readonly X509Certificate[],
  jwtAuthorities: ReadonlyMap<string, KeyObject>,
): TrustBundle {
  const hash = createHash('sha256');
  for (const cert of x509Authorities) hash.update(cert.raw);
  for (const [kid, key] of [...jwtAuthorities].sort(([a], [b]) => (a < b ? -1 : 1))) {
    hash.update(kid).update(key.export({ format: 'der', type: 'spki' }));
  }
  return Object.freeze({ trustDomain, x509Authorities: Object.freeze([...x509Authorities]), jwtAuthorities, digest: hash.digest('hex') });
}

/**
 * Certificates already parsed, by their PEM block: OpenSSL's parse is the largest cold cost (COSTS.md), and the
 * intermediates every caller of a domain presents are the same bytes. Certificates are immutable; bounded.
 */
const parsedPEM = new LRUCache<string, X509Certificate>({
  max: 4096,
  // Bounded by bytes too: a caller can send large blocks; at most ~8 MiB of PEM text is kept.
  maxSize: 8 * 1024 * 1024,
  sizeCalculation: (_cert, block) => block.length,
});

const BEGIN = '-----BEGIN CERTIFICATE-----';
const END = '-----END CERTIFICATE-----';

/**
 * PEM text with one or more CERTIFICATE blocks → certificates; at most `maxCertificates`. The BEGIN markers
 * are counted before any block is looked for or parsed (~0.2 ms each), and the blocks are found in one pass
 * forward: a lazy `BEGIN…END` regex searched for an END from every BEGIN, quadratic in bare markers
 * (64 KiB of them cost ~70 ms). A BEGIN with no END before the next BEGIN or the end is refused, not skipped.
 */
export function parsePEMCertificates(pem: string, what = 'PEM', maxCertificates = MAX_AUTHORITIES): X509Certificate[] {
  let markers = 0;
  for (let i = pem.indexOf(BEGIN); i !== -1; i = pem.indexOf(BEGIN, i + BEGIN.length))
    if (++markers > maxCertificates)
      throw new VerdictError('ERR_SVID_MALFORMED', `${what} holds more than ${maxCertificates} certificates`);
  const certs: X509Certificate[] = [];
  for (let i = pem.indexOf(BEGIN); i !== -1;) {
    const end = pem.indexOf(END, i + BEGIN.length);
    const next = end === -1 ? -1 : pem.indexOf(BEGIN, i + BEGIN.length);
    if (end === -1 || (next !== -1 && next < end))
      throw new VerdictError('ERR_SVID_MALFORMED', `${what}: a BEGIN CERTIFICATE has no END CERTIFICATE before the next block or the end`);
    certs.push(parsePEMBlock(pem.slice(i, end + END.length), what));
    i = next;
  }
  return certs;
}

function parsePEMBlock(block: string, what: string): X509Certificate {
  const known = parsedPEM.get(block);
  if (known) return known;
  try {
    const cert = new X509Certificate(block);
    parsedPEM.set(block, cert);
    return cert;
  } catch (err) {
    throw new VerdictError('ERR_SVID_MALFORMED', `${what}: a certificate does not parse`, { cause: err });
  }
}

/**
 * ASN.1 DER certificates concatenated (Workload API §5.4: x509_svid, bundle) → certificates; at most
 * `maxCertificates` of them (each costs ~0.2 ms to parse here), counted before the next one is parsed.
 */
export function parseDERCertificates(der: Uint8Array, what = 'DER', maxCertificates = MAX_AUTHORITIES): X509Certificate[] {
  const certs: X509Certificate[] = [];
  let offset = 0;
  while (offset < der.length) {
    if (certs.length >= maxCertificates)
      throw new VerdictError('ERR_SVID_MALFORMED', `${what} holds more than ${maxCertificates} certificates`);
    const length = derElementLength(der, offset);
    if (length === null || offset + length > der.length) throw new VerdictError('ERR_SVID_MALFORMED', `${what} is not DER`);
    try {
      certs.push(new X509Certificate(Buffer.from(der.subarray(offset, offset + length))));
    } catch (err) {
      throw new VerdictError('ERR_SVID_MALFORMED', `${what}: a certificate does not parse`, { cause: err });
    }
    offset += length;
  }
  return certs;
}

/** Total length (header + content) of the DER SEQUENCE at `offset`, or null when it is not one. */
function derElementLength(der: Uint8Array, offset: number): number | null {
  if (der[offset] !== 0x30) return null;
  const first = der[offset + 1];
  if (first === undefined) return null;
  if (first < 0x80) return 2 + first;
  const octets = first & 0x7f;
  if (octets === 0 || octets > 4 || offset + 2 + octets > der.length) return null;
  let length = 0;
  for (let i = 0; i < octets; i++) length = length * 256 + (der[offset + 2 + i] as number);
  return 2 + octets + length;
}

interface JWKS {
  keys?: unknown;
}

function parseJWKSText(trustDomain: string, text: string | Uint8Array, maxKeys = MAX_AUTHORITIES): JWKS {
  if (text.length > MAX_BUNDLE_BYTES) throw bad(trustDomain, `larger than ${MAX_BUNDLE_BYTES} bytes`);
  let doc: unknown;
  try {
    doc = JSON.parse(typeof text === 'string' ? text : Buffer.from(text).toString('utf8'));
  } catch (err) {
    throw bad(trustDomain, 'not JSON', err);
  }
  if (typeof doc !== 'object' || doc === null || !Array.isArray((doc as JWKS).keys)) throw bad(trustDomain, 'not a JWK set');
  if (((doc as JWKS).keys as unknown[]).length > maxKeys) throw bad(trustDomain, `more than ${maxKeys} keys`);
  return doc as JWKS;
}

function jwkToKey(trustDomain: string, jwk: JsonWebKey): KeyObject {
  let key: KeyObject;
  try {
    // Only public parts are kept: a bundle never carries private keys.
    const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, k: _k, ...pub } = jwk;
    if (jwk.kty === 'oct') throw new Error('symmetric keys are not authorities');
    key = createPublicKey({ key: pub, format: 'jwk' });
  } catch (err) {
    throw bad(trustDomain, `key ${quoteShort(jwk.kid)} is not a usable public key`, err);
  }
  // The same bounds as a certificate issuer's key (key-limits.ts): too weak, or too costly to check.
  const problem = keyLimitProblem(key);
  if (problem !== null) throw bad(trustDomain, `key ${quoteShort(jwk.kid)} ${problem}`);
  return key;
}

/** The entries of a JWK set's `keys`, each a JSON object (RFC 7517 §5: "an array of JWK values"). */
function jwkEntries(trustDomain: string, keys: unknown): JsonWebKey[] {
  const list = keys as unknown[];
  if (list.some((k) => typeof k !== 'object' || k === null || Array.isArray(k))) throw bad(trustDomain, 'a key is not a JSON object');
  return list as JsonWebKey[];
}

/**
 * SPIFFE bundle format (Trust Domain and Bundle §4): a JWK set whose keys say `use`: `x509-svid` keys carry
 * their authority in `x5c` (§4.2.2, X509-SVID §6.2); `jwt-svid` keys carry a `kid`. Other uses are ignored
 * (§4.1: unknown uses must be ignored).
 */
export function parseSPIFFEBundle(trustDomain: string, text: string | Uint8Array): TrustBundle {
  const { keys } = parseJWKSText(trustDomain, text);
  const x509: X509Certificate[] = [];
  const jwt = new Map<string, KeyObject>();
  for (const raw of jwkEntries(trustDomain, keys)) {
    if (raw.use === 'x509-svid') {
      const authority = x509Authority(trustDomain, raw.x5c as unknown);
      if (authority) x509.push(authority);
    } else if (raw.use === 'jwt-svid') {
      addJWTAuthority(trustDomain, jwt, raw);
    }
  }
  return makeTrustBundle(trustDomain, x509, jwt);
}

/**
 * X509-SVID §6.2 / Trust Domain and Bundle §4.2.2: the authority is the first `x5c` value (further values are
 * not used); an entry with no `x5c` value is ignored, not the whole bundle. A first value that is not exactly
 * one certificate refuses the bundle (the old one stays).
 */
function x509Authority(trustDomain: string, x5c: unknown): X509Certificate | null {
  if (x5c === undefined || (Array.isArray(x5c) && x5c.length === 0)) return null;
  if (!Array.isArray(x5c) || typeof x5c[0] !== 'string') throw bad(trustDomain, 'x509-svid key has an x5c that is not a list of strings');
  const certs = parseDERCertificates(Buffer.from(x5c[0], 'base64'), `bundle ${trustDomain}`);
  if (certs.length !== 1) throw bad(trustDomain, `x509-svid key's first x5c value holds ${certs.length} certificates, not one`);
  return certs[0] as X509Certificate;
}

/** JWT bundle as the Workload API sends it (§6.3 JWTBundlesResponse): a JWK set; every key needs a `kid`. */
export function parseJWTBundle(trustDomain: string, text: string | Uint8Array, maxKeys = MAX_AUTHORITIES): Map<string, KeyObject> {
  const { keys } = parseJWKSText(trustDomain, text, maxKeys);
  const jwt = new Map<string, KeyObject>();
  for (const raw of jwkEntries(trustDomain, keys)) addJWTAuthority(trustDomain, jwt, raw);
  return jwt;
}

function addJWTAuthority(trustDomain: string, into: Map<string, KeyObject>, raw: JsonWebKey): void {
  const kid = raw.kid as unknown;
  if (typeof kid !== 'string' || kid === '') throw bad(trustDomain, 'a JWT authority lacks its kid');
  if (into.has(kid)) throw bad(trustDomain, `duplicate kid ${quoteShort(kid)}`);
  into.set(kid, jwkToKey(trustDomain, raw));
}

/** A bundle file: PEM certificates, or a SPIFFE bundle (JWK set). */
export function parseBundleFile(trustDomain: string, text: string): TrustBundle {
  if (text.length > MAX_BUNDLE_BYTES) throw bad(trustDomain, `larger than ${MAX_BUNDLE_BYTES} bytes`);
  if (text.trimStart().startsWith('{')) return parseSPIFFEBundle(trustDomain, text);
  const certs = parsePEMCertificates(text, `bundle ${trustDomain}`);
  if (certs.length === 0) throw bad(trustDomain, 'no CERTIFICATE block found');
  return makeTrustBundle(trustDomain, certs, new Map());
}
