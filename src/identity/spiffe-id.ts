import { VerdictError } from '../errors';

/** A parsed, valid SPIFFE ID (SPIFFE-ID §2). */
export interface SPIFFEID {
  /** The whole ID, `spiffe://<trust domain><path>`. */
  readonly id: string;
  readonly trustDomain: string;
  /** `""` or `/seg/seg…`. */
  readonly path: string;
}

const SCHEME = 'spiffe://';
// SPIFFE-ID §2.3: implementations must support IDs up to 2048 bytes and trust domains up to 255 (§2.1).
const MAX_ID_BYTES = 2048;
const MAX_TRUST_DOMAIN_BYTES = 255;
// SPIFFE-ID §2.1: lowercase letters, digits, dots, dashes, underscores. Anything else (including the
// `@` of userinfo, the `:` of a port and percent escapes) is invalid.
const TRUST_DOMAIN_CHARS = /^[a-z0-9._-]+$/;
// SPIFFE-ID §2.2: path segments use letters, digits, dots, dashes and underscores; no percent-encoding.
const SEGMENT_CHARS = /^[A-Za-z0-9._-]+$/;

function invalid(value: string, why: string): VerdictError {
  return new VerdictError('ERR_SPIFFE_ID_INVALID', `${JSON.stringify(value.slice(0, 128))} is not a SPIFFE ID: ${why}`);
}

/** Parses a SPIFFE ID; throws ERR_SPIFFE_ID_INVALID with the rule it breaks. */
export function parseSPIFFEID(value: string): SPIFFEID {
  if (typeof value !== 'string') throw new TypeError('parseSPIFFEID expects a string');
  if (value.length === 0) throw invalid(value, 'empty');
  if (Buffer.byteLength(value) > MAX_ID_BYTES) throw invalid(value, `longer than ${MAX_ID_BYTES} bytes`);
  // SPIFFE-ID §2: the scheme is `spiffe`, lowercase.
  if (!value.startsWith(SCHEME)) throw invalid(value, 'scheme must be "spiffe://"');
  const rest = value.slice(SCHEME.length);
  // SPIFFE-ID §2: no query or fragment.
  if (rest.includes('?')) throw invalid(value, 'query is not allowed');
  if (rest.includes('#')) throw invalid(value, 'fragment is not allowed');
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  checkTrustDomain(trustDomain, value);
  checkPath(path, value);
  return Object.freeze({ id: value, trustDomain, path });
}

/**
 * A trust domain name (SPIFFE-ID §2.1), given bare (`example.org`) or as its SPIFFE ID (`spiffe://example.org`),
 * the form SPIRE uses for the bundle map keys of the Workload API. Returns the bare name.
 */
export function parseTrustDomain(value: string): string {
  if (value.startsWith(SCHEME)) return parseSPIFFEID(value).trustDomain;
  checkTrustDomain(value, value);
  return value;
}

function checkTrustDomain(td: string, whole: string): void {
  if (td.length === 0) throw invalid(whole, 'trust domain is empty');
  if (td.length > MAX_TRUST_DOMAIN_BYTES) throw invalid(whole, `trust domain longer than ${MAX_TRUST_DOMAIN_BYTES} bytes`);
  if (td.includes('@')) throw invalid(whole, 'userinfo is not allowed');
  if (td.includes(':')) throw invalid(whole, 'port is not allowed');
  if (td.includes('%')) throw invalid(whole, 'percent-encoding is not allowed');
  if (!TRUST_DOMAIN_CHARS.test(td)) throw invalid(whole, 'trust domain may hold only a-z 0-9 . - _');
}

function checkPath(path: string, whole: string): void {
  if (path === '') return;
  // SPIFFE-ID §2.2: no trailing slash, no empty, `.` or `..` segments.
  const segments = path.slice(1).split('/');
  for (const seg of segments) {
    if (seg === '') throw invalid(whole, 'path has an empty segment or a trailing slash');
    if (seg === '.' || seg === '..') throw invalid(whole, 'path has a relative segment');
    if (seg.includes('%')) throw invalid(whole, 'percent-encoding is not allowed');
    if (!SEGMENT_CHARS.test(seg)) throw invalid(whole, 'path segments may hold only A-Z a-z 0-9 . - _');
  }
}

/** `spiffe://td/a/*` style globs are not SPIFFE IDs; this matches allow-lists of exact IDs or `prefix/*`. */
export function matchesSPIFFEIDPattern(id: string, pattern: string): boolean {
  if (pattern.endsWith('/*')) return id.startsWith(pattern.slice(0, -1));
  return id === pattern;
}
