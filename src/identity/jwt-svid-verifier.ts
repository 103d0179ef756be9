import type { KeyObject } from 'node:crypto';
import { errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { VerdictError, type ErrorCode } from '../errors';
import type { BundleSource } from './bundle-source';
import { compactSegments, decodeSegment, quoteShort, registeredClaimsProblem } from './jws-compact';
import { parseSPIFFEID, type SPIFFEID } from './spiffe-id';
import type { VerifiedSVID } from './verified-svid';

/** JWT-SVID §3: the algorithms a JWT-SVID may use. `none` and HMAC (shared secrets) never verify an identity. */
export const JWT_SVID_ALGORITHMS = Object.freeze(['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512']);

export interface JWTSVIDVerifyOptions {
  /** The injected clock's now. */
  nowMs: number;
  /** JWT-SVID §3.2: the token's `aud` must hold one of these. */
  audiences: readonly string[];
  /** A subset of JWT_SVID_ALGORITHMS; all of them by default. */
  algorithms?: readonly string[];
  /** Tokens longer than this are refused before decoding (bounded memory). */
  maxTokenBytes?: number;
}

const DEFAULT_MAX_TOKEN_BYTES = 16 * 1024;

export async function verifyJWTSVID(token: string, source: BundleSource, options: JWTSVIDVerifyOptions): Promise<VerifiedSVID> {
  if (options.audiences.length === 0) throw new TypeError('verifyJWTSVID needs at least one audience');
  if (token.length > (options.maxTokenBytes ?? DEFAULT_MAX_TOKEN_BYTES))
    throw new VerdictError('ERR_SVID_MALFORMED', 'JWT-SVID is too long');
  const algorithms = options.algorithms ?? JWT_SVID_ALGORITHMS;
  const { header, claims } = decode(token);
  const { alg, kid } = readHeader(header);
  if (!alg || !algorithms.includes(alg)) throw new VerdictError('ERR_JWT_ALGORITHM', `algorithm ${quoteShort(alg)} is not allowed`);
  // JWT-SVID §2.2: kid is required, to select the key in the bundle.
  if (!kid) throw new VerdictError('ERR_JWT_KEY_UNKNOWN', 'JWT-SVID header has no kid');
  const spiffeID = readSubject(claims);
  const bundle = source.bundleForTrustDomain(spiffeID.trustDomain);
  if (!bundle) throw new VerdictError('ERR_SVID_UNTRUSTED', `no JWT authorities for trust domain "${spiffeID.trustDomain}"`);
  const key = bundle.jwtAuthorities.get(kid);
  if (!key) throw new VerdictError('ERR_JWT_KEY_UNKNOWN', `kid ${quoteShort(kid)} is not in the bundle of ${spiffeID.trustDomain}`);
  checkKeyFitsAlgorithm(alg, key);
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, key, {
      algorithms: [...algorithms],
      audience: [...options.audiences],
      currentDate: new Date(options.nowMs),
      // JWT-SVID §3: sub, aud and exp are required.
      requiredClaims: ['sub', 'aud', 'exp'],
    }));
  } catch (err) {
    throw mapJoseError(err);
  }
  const problem = registeredClaimsProblem(payload);
  if (problem) throw new VerdictError('ERR_JWT_CLAIMS', `JWT-SVID ${problem}`);
  const expiresAtMs = (payload.exp as number) * 1000;
  return { spiffeID, svidType: 'jwt', expiresAtMs, validUntilMs: expiresAtMs, bundle };
}

/** The key type (and curve) each JWT-SVID algorithm needs (RFC 7518 §3.3–§3.5). */
const KEY_FOR_ALG: Record<string, { types: readonly string[]; curve?: string }> = {
  RS256: { types: ['rsa'] },
  RS384: { types: ['rsa'] },
  RS512: { types: ['rsa'] },
  PS256: { types: ['rsa', 'rsa-pss'] },
  PS384: { types: ['rsa', 'rsa-pss'] },
  PS512: { types: ['rsa', 'rsa-pss'] },
  ES256: { types: ['ec'], curve: 'prime256v1' },
  ES384: { types: ['ec'], curve: 'secp384r1' },
  ES512: { types: ['ec'], curve: 'secp521r1' },
};

/** An algorithm that does not fit the bundle key (ES384 with a P-256 key, RS256 with an EC key) is the token's fault. */
function checkKeyFitsAlgorithm(alg: string, key: KeyObject): void {
  const need = KEY_FOR_ALG[alg];
  const type = key.asymmetricKeyType ?? 'none';
  const fits =
    need !== undefined && need.types.includes(type) && (need.curve === undefined || key.asymmetricKeyDetails?.namedCurve === need.curve);
  if (!fits) throw new VerdictError('ERR_JWT_ALGORITHM', `algorithm ${alg} does not fit the bundle key (${type})`);
}

/** Header and claims, each decoded once and bounded (jws-compact.ts), for the checks before the signature. */
function decode(token: string): { header: Record<string, unknown>; claims: Record<string, unknown> } {
  try {
    const segments = compactSegments(token);
    return { header: decodeSegment(segments.header), claims: decodeSegment(segments.payload) };
  } catch (err) {
    throw new VerdictError('ERR_SVID_MALFORMED', `not a JWS compact JWT: ${(err as Error).message}`, { cause: err });
  }
}

function readHeader(h: Record<string, unknown>): { alg?: string; kid?: string } {
  // JWT-SVID §2.3: typ, when present, is JWT or JOSE.
  if (h.typ !== undefined && h.typ !== 'JWT' && h.typ !== 'JOSE')
    throw new VerdictError('ERR_SVID_MALFORMED', `typ ${quoteShort(h.typ)} is not allowed`);
  // RFC 7515 §4.1.11: a `crit` extension the recipient does not process is refused; JWT-SVID defines none.
  if (h.crit !== undefined) throw new VerdictError('ERR_SVID_MALFORMED', 'JWT-SVID header has crit extensions');
  return { ...(typeof h.alg === 'string' && h.alg ? { alg: h.alg } : {}), ...(typeof h.kid === 'string' && h.kid ? { kid: h.kid } : {}) };
}

/**
 * The unverified `sub` picks the bundle; the signature then proves it (as go-spiffe's jwtsvid does). JWT-SVID
 * §3.1: it is the SPIFFE ID of the workload, so the trust domain's own ID (no path) is refused, as for an
 * X509-SVID leaf (X509-SVID §3.1).
 */
function readSubject(claims: Record<string, unknown>): SPIFFEID {
  if (typeof claims.sub !== 'string') throw new VerdictError('ERR_JWT_CLAIMS', 'JWT-SVID has no sub');
  const id = parseSPIFFEID(claims.sub);
  if (id.path === '')
    throw new VerdictError('ERR_JWT_CLAIMS', `JWT-SVID sub ${id.id} names a trust domain, not a workload (JWT-SVID §3.1)`);
  return id;
}

function mapJoseError(err: unknown): VerdictError {
  const message = err instanceof Error ? err.message : String(err);
  let code: ErrorCode = 'ERR_SVID_MALFORMED';
  if (err instanceof joseErrors.JWTExpired) code = 'ERR_SVID_EXPIRED';
  else if (err instanceof joseErrors.JWTClaimValidationFailed) code = claimCode(err.claim, err.reason);
  else if (err instanceof joseErrors.JWSSignatureVerificationFailed) code = 'ERR_SVID_SIGNATURE';
  else if (err instanceof joseErrors.JOSEAlgNotAllowed) code = 'ERR_JWT_ALGORITHM';
  // jose: the header's algorithm does not fit the bundle key (e.g. ES384 with a P-256 key, RS256 with an EC key).
  else if (err instanceof joseErrors.JOSENotSupported) code = 'ERR_JWT_ALGORITHM';
  else if (err instanceof TypeError) code = 'ERR_JWT_ALGORITHM'; // key type does not fit the alg
  return new VerdictError(code, message, { cause: err });
}

function claimCode(claim: string, reason: string): ErrorCode {
  if (claim === 'aud' && reason !== 'missing') return 'ERR_JWT_AUDIENCE';
  if (claim === 'nbf' || claim === 'iat') return reason === 'check_failed' ? 'ERR_SVID_NOT_YET_VALID' : 'ERR_JWT_CLAIMS';
  return 'ERR_JWT_CLAIMS';
}
