import { decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { Clock } from '../clock';
import type { JWTIssuerConfig } from '../config/sections/jwt-issuers';
import { VerdictError, type ErrorCode } from '../errors';
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
 * Order: size → header (alg allow-listed, `none` refused, kid required) → issuer → key → signature and claims
 * (RFC 7519 §4.1: iss, aud, exp required; nbf/iat checked with bounded skew) → act chain.
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

  /** True when the token's unverified `iss` is a configured issuer (so this verifier, not JWT-SVID, owns it). */
  claims(token: string): boolean {
    if (token.length > this.maxTokenBytes) return this.issuers.size > 0;
    try {
      const iss = decodeJwt(token).iss;
      return typeof iss === 'string' && this.issuers.has(iss);
    } catch {
      return false;
    }
  }

  prefetch(): Promise<void> {
    return Promise.all([...this.issuers.values()].map((i) => i.keys.prefetch())).then(() => undefined);
  }

  async verify(token: string): Promise<TokenInput> {
    if (token.length > this.maxTokenBytes) throw new VerdictError('ERR_TOKEN_MALFORMED', `token exceeds ${this.maxTokenBytes} bytes`);
    const { alg, kid } = readHeader(token);
    const issuer = this.issuerOf(token);
    if (alg === 'none' || !(issuer.config.algorithms as readonly string[]).includes(alg))
      throw new VerdictError('ERR_TOKEN_ALGORITHM', `algorithm ${JSON.stringify(alg)} is not allowed for ${issuer.config.issuer}`);
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
    const act = flattenActChain(payload.act, issuer.config.maxActDepth);
    return { ...payload, iss: issuer.config.issuer, act };
  }

  private issuerOf(token: string): Issuer {
    let iss: unknown;
    try {
      iss = decodeJwt(token).iss;
    } catch (err) {
      throw new VerdictError('ERR_TOKEN_MALFORMED', 'token claims do not decode', { cause: err });
    }
    const issuer = typeof iss === 'string' ? this.issuers.get(iss) : undefined;
    if (!issuer) throw new VerdictError('ERR_TOKEN_ISSUER', `issuer ${JSON.stringify(iss)} is not configured`);
    return issuer;
  }
}

function readHeader(token: string): { alg: string; kid?: string } {
  let h: ReturnType<typeof decodeProtectedHeader>;
  try {
    h = decodeProtectedHeader(token);
  } catch (err) {
    throw new VerdictError('ERR_TOKEN_MALFORMED', 'not a JWS compact token', { cause: err });
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
