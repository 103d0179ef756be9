import { errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { Clock } from '../clock';
import type { JWTIssuerConfig } from '../config/sections/jwt-issuers';
import { VerdictError, type ErrorCode } from '../errors';
import { compactSegments, decodeSegment, quoteShort, registeredClaimsProblem } from './jws-compact';
import { flattenActChain, type Actor } from './oidc-act-chain';
import { OIDCIssuerKeys } from './oidc-issuer-keys';

/** `input.token`: the verified claims, with `act` replaced by the flattened delegation chain (always a list). */
export type TokenInput = Record<string, unknown> & { iss: string; act: Actor[] };

interface Issuer {
  config: JWTIssuerConfig;
  keys: OIDCIssuerKeys;
}

/**
 * Verifies OIDC / JWT access tokens from the configured issuers. The unverified `iss` picks the issuer (as
 * the unverified `sub` picks a JWT-SVID's bundle); its keys, algorithm list, audiences and skew then decide.
 * Order: size → claims decoded (bounded, jws-compact.ts) → header (crit refused) → issuer → alg allow-listed
 * (`none` refused) → kid required → key → signature and claims (RFC 7519 §4.1: iss, aud, exp required;
 * nbf/iat checked with bounded skew; NumericDates within the Date range, aud strings only) → act chain.
 */
export class OIDCTokenVerifier {
  private readonly issuers = new Map<string, Issuer>();

  constructor(
    configs: readonly JWTIssuerConfig[],
    private readonly clock: Clock,
    private readonly maxTokenBytes: number,
  ) {
    for (const config of configs) this.issuers.set(config.issuer, { config, keys: new OIDCIssuerKeys(config, clock) });
  }

  prefetch(): Promise<void> {
    return Promise.all([...this.issuers.values()].map((i) => i.keys.prefetch())).then(() => undefined);
  }

  /**
   * The verified claims. A token that is not this verifier's — its claims do not decode, or its unverified
   * `iss` is no configured issuer — is refused (ERR_TOKEN_MALFORMED, ERR_TOKEN_ISSUER), or, with `leaveOthers`
   * (JWT-SVIDs are verified too), answered with null for the JWT-SVID verifier. An oversized token is refused
   * either way. Header and claims are each decoded once.
   */
  async verify(token: string, leaveOthers = false): Promise<TokenInput | null> {
    if (token.length > this.maxTokenBytes) throw new VerdictError('ERR_TOKEN_MALFORMED', `token exceeds ${this.maxTokenBytes} bytes`);
    let segments: { header: string; payload: string };
    let claims: Record<string, unknown>;
    try {
      segments = compactSegments(token);
      claims = decodeSegment(segments.payload);
    } catch (err) {
      if (leaveOthers) return null;
      throw new VerdictError('ERR_TOKEN_MALFORMED', `token claims do not decode: ${(err as Error).message}`, { cause: err });
    }
    const issuer = typeof claims.iss === 'string' ? this.issuers.get(claims.iss) : undefined;
    if (!issuer && leaveOthers) return null;
    const { alg, kid } = readHeader(segments.header);
    if (!issuer) throw new VerdictError('ERR_TOKEN_ISSUER', `issuer ${quoteShort(claims.iss)} is not configured`);
    if (alg === 'none' || !(issuer.config.algorithms as readonly string[]).includes(alg))
      throw new VerdictError('ERR_TOKEN_ALGORITHM', `algorithm ${quoteShort(alg)} is not allowed for ${issuer.config.issuer}`);
    if (kid === undefined) throw new VerdictError('ERR_TOKEN_KEY_UNKNOWN', 'token header has no kid');
    const getKey = await issuer.keys.keyFor(kid);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, getKey, {
        issuer: issuer.config.issuer,
        audience: [...issuer.config.audiences],
        algorithms: [...issuer.config.algorithms],
        clockTolerance: issuer.config.clockSkewSeconds,
        currentDate: new Date(this.clock.nowMs()),
        requiredClaims: ['iss', 'aud', 'exp'],
      }));
    } catch (err) {
      throw mapJoseError(err);
    }
    const problem = registeredClaimsProblem(payload);
    if (problem) throw new VerdictError('ERR_TOKEN_CLAIMS', `token ${problem}`);
    const act = flattenActChain(payload.act, issuer.config.maxActDepth);
    return { ...payload, iss: issuer.config.issuer, act };
  }
}

function readHeader(segment: string): { alg: string; kid?: string } {
  let h: Record<string, unknown>;
  try {
    h = decodeSegment(segment);
  } catch (err) {
    throw new VerdictError('ERR_TOKEN_MALFORMED', `token header does not decode: ${(err as Error).message}`, { cause: err });
  }
  // RFC 7515 §4.1.11: a critical extension verdict does not understand makes the token unusable.
  if (h.crit !== undefined) throw new VerdictError('ERR_TOKEN_MALFORMED', 'token header has crit extensions');
  return { alg: typeof h.alg === 'string' ? h.alg : '', ...(typeof h.kid === 'string' && h.kid !== '' ? { kid: h.kid } : {}) };
}

function mapJoseError(err: unknown): VerdictError {
  const message = err instanceof Error ? err.message : String(err);
  let code: ErrorCode = 'ERR_TOKEN_MALFORMED';
  if (err instanceof joseErrors.JWTExpired) code = 'ERR_TOKEN_EXPIRED';
  else if (err instanceof joseErrors.JWTClaimValidationFailed) code = claimCode(err.claim, err.reason);
  else if (err instanceof joseErrors.JWSSignatureVerificationFailed) code = 'ERR_TOKEN_SIGNATURE';
  else if (err instanceof joseErrors.JOSEAlgNotAllowed) code = 'ERR_TOKEN_ALGORITHM';
  else if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys)
    code = 'ERR_TOKEN_KEY_UNKNOWN';
  return new VerdictError(code, message, { cause: err });
}

function claimCode(claim: string, reason: string): ErrorCode {
  if (claim === 'aud' && reason !== 'missing') return 'ERR_TOKEN_AUDIENCE';
  if ((claim === 'nbf' || claim === 'iat') && reason === 'check_failed') return 'ERR_TOKEN_NOT_YET_VALID';
  return 'ERR_TOKEN_CLAIMS';
}
