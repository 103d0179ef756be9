import type { X509Certificate } from 'node:crypto';
import type { Clock } from '../clock';
import type { IdentityConfig } from '../config/sections/identity';
import { VerdictError, toVerdictError } from '../errors';
import type { CheckRequest, HttpRequest } from '../request/check-request';
import { requestHeader } from '../request/request-header';
import type { SPIFFEInput } from '../request/input-document';
import type { BundleSource } from './bundle-source';
import type { IdentityStep } from './identity-step';
import { verifyJWTSVID } from './jwt-svid-verifier';
import { parseSPIFFEID } from './spiffe-id';
import { SVIDCache } from './svid-cache';
import { parsePEMCertificates } from './trust-bundle';
import { toSPIFFEInput, type VerifiedSVID } from './verified-svid';
import { verifyX509SVID } from './x509-svid-verifier';
import { chainFromXFCC } from './xfcc-chain';
import { combinedIntermediates, fixedIntermediates, NO_INTERMEDIATES, type IntermediateSource } from './intermediate-source';

export interface SPIFFEIdentityStepDeps {
  config: IdentityConfig;
  bundles: BundleSource;
  clock: Clock;
  /** Path-building candidates the caller did not present (own SVID chain, files). */
  intermediates?: IntermediateSource;
}

const XFCC_HEADER = 'x-forwarded-client-cert';

/** Envoy sends one certificate (the leaf); a chain with intermediates is accepted too, within bounds. */
const MAX_CERTIFICATE_FIELD_BYTES = 64 * 1024;

/**
 * The pipeline's identity step: verifies the SVIDs a request presents — the peer certificate Envoy forwards
 * (X509-SVID) and a JWT-SVID in the configured header — and yields the `spiffe` input block. Any presented
 * SVID that fails denies before policy, with the status configured for its kind. When both verify, the
 * JWT-SVID names the caller (it travels end to end; the certificate names the last TLS hop).
 */
export class SPIFFEIdentityStep implements IdentityStep {
  private readonly cache: SVIDCache | null;

  constructor(private readonly deps: SPIFFEIdentityStepDeps) {
    this.cache = deps.config.cacheMaxEntries > 0 ? new SVIDCache(deps.config.cacheMaxEntries) : null;
  }

  identify(req: CheckRequest): SPIFFEInput | null | Promise<SPIFFEInput | null> {
    const x509 = this.identifyX509(req);
    const token = this.jwtFromRequest(req.attributes?.request?.http);
    if (token === null) return x509 ? toSPIFFEInput(x509) : this.envoyPrincipal(req);
    const cached = this.fromCache('jwt', token);
    if (cached) return toSPIFFEInput(cached);
    return this.verifyJWT(token).then(toSPIFFEInput);
  }

  private identifyX509(req: CheckRequest): VerifiedSVID | null {
    const field = req.attributes?.source?.certificate;
    if (!this.deps.config.x509.enabled || !field) return null;
    const { config, bundles, clock } = this.deps;
    // The XFCC header is read only when the operator declared that Envoy sanitizes and sets it.
    const xfcc = config.x509.intermediates.trustXFCCChain ? (requestHeader(req.attributes?.request?.http, XFCC_HEADER) ?? '') : '';
    try {
      const key = SVIDCache.keyOf('x509', field, xfcc);
      const nowMs = clock.nowMs();
      const verify = (): VerifiedSVID =>
        verifyX509SVID(decodeCertificateField(field), bundles, {
          nowMs,
          maxPathLength: config.x509.maxPathLength,
          maxCandidates: config.x509.maxCandidates,
          intermediates: this.candidatesWith(chainFromXFCC(xfcc)),
        });
      return this.cache ? this.cache.getOrVerify(key, bundles, nowMs, verify) : verify();
    } catch (err) {
      throw withStatus(err, config.x509.failureStatus);
    }
  }

  private candidatesWith(forwarded: readonly X509Certificate[]): IntermediateSource {
    const configured = this.deps.intermediates ?? NO_INTERMEDIATES;
    return forwarded.length === 0 ? configured : combinedIntermediates([fixedIntermediates(forwarded), configured]);
  }

  private async verifyJWT(token: string): Promise<VerifiedSVID> {
    const { config, bundles, clock } = this.deps;
    try {
      const svid = await verifyJWTSVID(token, bundles, {
        nowMs: clock.nowMs(),
        audiences: config.jwt.audiences,
        algorithms: config.jwt.algorithms,
        maxTokenBytes: config.jwt.maxTokenBytes,
      });
      this.remember('jwt', token, svid);
      return svid;
    } catch (err) {
      throw withStatus(err, config.jwt.failureStatus);
    }
  }

  /** The token in the configured header, or null when none is presented (or JWT-SVIDs are off). */
  private jwtFromRequest(http: HttpRequest | undefined): string | null {
    const { jwt } = this.deps.config;
    if (!jwt.enabled || jwt.audiences.length === 0) return null;
    const value = requestHeader(http, jwt.header);
    if (value === undefined) return null;
    if (jwt.scheme === '') return value.trim();
    const space = value.indexOf(' ');
    if (space === -1 || value.slice(0, space).toLowerCase() !== jwt.scheme.toLowerCase()) return null;
    return value.slice(space + 1).trim();
  }

  /** Envoy already verified the peer (trustEnvoyPrincipal): its principal is taken as the caller's SPIFFE ID. */
  private envoyPrincipal(req: CheckRequest): SPIFFEInput | null {
    const principal = req.attributes?.source?.principal;
    if (!this.deps.config.trustEnvoyPrincipal || !principal?.startsWith('spiffe://')) return null;
    try {
      const id = parseSPIFFEID(principal);
      // The expiry is Envoy's to enforce; verdict never saw the certificate.
      return { id: id.id, trust_domain: id.trustDomain, path: id.path, svid_type: 'x509', expires_at: '' };
    } catch (err) {
      throw withStatus(err, this.deps.config.x509.failureStatus);
    }
  }

  private fromCache(kind: 'x509' | 'jwt', document: string): VerifiedSVID | undefined {
    if (!this.cache) return undefined;
    return this.cache.get(SVIDCache.keyOf(kind, document), this.deps.bundles, this.deps.clock.nowMs());
  }

  private remember(kind: 'x509' | 'jwt', document: string, svid: VerifiedSVID): void {
    this.cache?.set(SVIDCache.keyOf(kind, document), svid);
  }
}

/** attributes.source.certificate: URL-encoded PEM (Envoy's AttributeContext.Peer.certificate). */
export function decodeCertificateField(field: string): X509Certificate[] {
  if (field.length > MAX_CERTIFICATE_FIELD_BYTES) throw new VerdictError('ERR_SVID_MALFORMED', 'peer certificate field is too large');
  let pem: string;
  try {
    pem = decodeURIComponent(field);
  } catch (err) {
    throw new VerdictError('ERR_SVID_MALFORMED', 'peer certificate is not URL-encoded', { cause: err });
  }
  const certs = parsePEMCertificates(pem, 'peer certificate');
  if (certs.length === 0) throw new VerdictError('ERR_SVID_MALFORMED', 'peer certificate holds no PEM CERTIFICATE block');
  return certs;
}

function withStatus(err: unknown, httpStatus: number): VerdictError {
  const e = toVerdictError(err);
  if (e.kind !== 'identity') return e;
  return new VerdictError(e.code, e.message, { cause: e.cause, httpStatus });
}
