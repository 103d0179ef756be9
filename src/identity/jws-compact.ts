import { clip } from '../errors';

/**
 * What the JWT verifiers (JWT-SVID, OIDC) read from a token before its signature is checked — the header and
 * the claims that choose the bundle, issuer and key — decoded with bounded work, once each; and the shapes of
 * registered claims that jose accepts but verdict cannot use. Errors are plain: each verifier gives them its
 * own code. jose then parses the header once more (before its signature check) and the payload after it.
 */

/**
 * Header or payload JSON nesting deeper than this is refused before it is parsed: JSON.parse and every later
 * serialiser of input.token recurse, and an unsigned token of up to identity.jwt.maxTokenBytes (1 MiB at
 * most) could otherwise nest ~390,000 levels. Claims need few levels: an `act` chain of maxActDepth (≤ 16)
 * nests one object per actor.
 */
export const MAX_TOKEN_JSON_DEPTH = 64;

/**
 * A value from a token or a key set, for an error message: its author chose it (a kid, an alg, an iss can be
 * as long as the token, or an object), so at most 64 characters of it are shown.
 */
export function quoteShort(value: unknown): string {
  const text = typeof value === 'string' ? value : value === undefined ? 'undefined' : (JSON.stringify(value) ?? typeof value);
  const short = clip(text, 64);
  return typeof value === 'string' ? JSON.stringify(short) : short;
}

/** The header and payload segments of a JWS compact serialization (RFC 7515 §7.1): exactly three segments. */
export function compactSegments(token: string): { header: string; payload: string } {
  const first = token.indexOf('.');
  const second = first === -1 ? -1 : token.indexOf('.', first + 1);
  if (second === -1 || token.indexOf('.', second + 1) !== -1) throw new Error('not three dot-separated segments (JWS compact)');
  return { header: token.slice(0, first), payload: token.slice(first + 1, second) };
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** One segment as a JSON object: base64url without padding (RFC 7515 §2), nesting counted before JSON.parse. */
export function decodeSegment(segment: string): Record<string, unknown> {
  if (!BASE64URL.test(segment)) throw new Error('a segment is not base64url');
  const json = Buffer.from(segment, 'base64url').toString('utf8');
  if (nestsDeeperThan(json, MAX_TOKEN_JSON_DEPTH)) throw new Error(`JSON nests deeper than ${MAX_TOKEN_JSON_DEPTH} levels`);
  const value: unknown = JSON.parse(json);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('a segment is not a JSON object');
  return value as Record<string, unknown>;
}

/** Brackets outside strings, counted in one pass: exact for valid JSON; invalid JSON fails JSON.parse anyway. */
function nestsDeeperThan(json: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: the next character is escaped
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/** ECMAScript Dates span ±8.64e15 ms: a NumericDate beyond ±8.64e12 s has no Date (toISOString throws). */
const MAX_NUMERIC_DATE_S = 8.64e12;

/**
 * RFC 7519 rules jose does not enforce: exp, nbf and iat are NumericDates (§2) — finite, and within the Date
 * range, where jose passes 1e300 or 1e400 (Infinity) — and an `aud` list holds strings only (§4.1.3; jose
 * matches one element and ignores the rest). Returns why the claims are refused, or null.
 */
export function registeredClaimsProblem(claims: Record<string, unknown>): string | null {
  for (const name of ['exp', 'nbf', 'iat']) {
    const t = claims[name];
    if (t !== undefined && !(typeof t === 'number' && Number.isFinite(t) && Math.abs(t) <= MAX_NUMERIC_DATE_S))
      return `${name} is not a NumericDate within ±${MAX_NUMERIC_DATE_S} seconds`;
  }
  const { aud } = claims;
  if (Array.isArray(aud) && aud.some((a) => typeof a !== 'string')) return 'aud holds a value that is not a string';
  return null;
}
