import type { Clock } from '../clock';
import type { IdentityConfig } from '../config/sections/identity';
import { VerdictError, toVerdictError } from '../errors';
import type { CheckRequest, HttpRequest } from '../request/check-request';
import { requestHeader } from '../request/request-header';
import type { Logger } from '../telemetry/logger';
import { OIDCTokenVerifier, type TokenInput } from './oidc-token-verifier';

export interface TokenStepResult {
  token: TokenInput;
  /** The request without the token's header, for the SPIFFE step (so it does not take the token for a JWT-SVID). */
  forIdentity: CheckRequest;
}

/**
 * The pipeline's token step (before the SPIFFE step): a bearer token whose `iss` is a configured issuer is
 * verified here and becomes `input.token`; any other token is left to the JWT-SVID verifier, so JWT-SVIDs and
 * OIDC tokens coexist in one header. With no JWT-SVID verification configured, a token from an unknown issuer
 * is refused (ERR_TOKEN_ISSUER). A presented token that fails denies before policy.
 */
export class OIDCTokenStep {
  constructor(
    private readonly verifier: OIDCTokenVerifier,
    private readonly options: { header: string; scheme: string; failureStatus: number; jwtSVIDEnabled: boolean },
  ) {}

  /** Null when identity.jwt.issuers is empty. */
  static fromConfig(config: IdentityConfig, deps: { clock: Clock; logger: Logger }): OIDCTokenStep | null {
    const { jwt } = config;
    if (!jwt.enabled || jwt.issuers.length === 0) return null;
    const verifier = new OIDCTokenVerifier(jwt.issuers, deps.clock, jwt.maxTokenBytes);
    void verifier.prefetch().then(() => deps.logger.debug({ issuers: jwt.issuers.map((i) => i.issuer) }, 'token issuer keys prefetched'));
    const jwtSVIDEnabled = config.enabled && jwt.audiences.length > 0;
    return new OIDCTokenStep(verifier, { header: jwt.header, scheme: jwt.scheme, failureStatus: jwt.failureStatus, jwtSVIDEnabled });
  }

  /** The verified token, or null when the request carries none this step owns. Throws an identity VerdictError. */
  async verify(req: CheckRequest): Promise<TokenStepResult | null> {
    const http = req.attributes?.request?.http;
    const token = bearerToken(http, this.options.header, this.options.scheme);
    if (token === null) return null;
    try {
      const verified = await this.verifier.verify(token, this.options.jwtSVIDEnabled);
      return verified && { token: verified, forIdentity: withoutHeader(req, this.options.header) };
    } catch (err) {
      const e = toVerdictError(err);
      throw e.kind === 'identity' ? new VerdictError(e.code, e.message, { cause: e.cause, httpStatus: this.options.failureStatus }) : e;
    }
  }
}

function bearerToken(http: HttpRequest | undefined, header: string, scheme: string): string | null {
  const value = requestHeader(http, header);
  if (value === undefined) return null;
  if (scheme === '') return value.trim();
  const space = value.indexOf(' ');
  if (space === -1 || value.slice(0, space).toLowerCase() !== scheme.toLowerCase()) return null;
  return value.slice(space + 1).trim();
}

/** A shallow copy of the request with `header` removed (both header encodings Envoy may use). */
function withoutHeader(req: CheckRequest, header: string): CheckRequest {
  const http = req.attributes?.request?.http;
  if (!http || !req.attributes?.request) return req;
  const stripped: HttpRequest = { ...http };
  if (http.headers) stripped.headers = Object.fromEntries(Object.entries(http.headers).filter(([k]) => k !== header));
  if (http.headerMap?.headers) stripped.headerMap = { ...http.headerMap, headers: http.headerMap.headers.filter((h) => h.key !== header) };
  return { ...req, attributes: { ...req.attributes, request: { ...req.attributes.request, http: stripped } } };
}
