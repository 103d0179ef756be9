import type { X509Certificate } from 'node:crypto';
import type { SecureContextOptions } from 'node:tls';
import { VerdictError } from '../errors';
import type { BundleSource } from '../identity/bundle-source';
import type { OwnX509SVID } from '../identity/workload-api-client';
import type { IntermediateSource } from '../identity/intermediate-source';
import { SVIDCache } from '../identity/svid-cache';
import { verifyCallerChain } from '../identity/verify-caller-chain';
import type { CallerCheck, CallerVerdict, ServerTLS } from './server-tls';

/** What the listener needs of the Workload API client (which implements it): own SVID, CAs, and their changes. */
export interface ServerSVIDSource extends BundleSource {
  readonly currentX509SVID: OwnX509SVID | null;
  allX509Authorities(): X509Certificate[];
  on(event: 'x509svid' | 'bundles', listener: () => void): unknown;
}

export interface SPIFFEServerTLSOptions {
  client: ServerSVIDSource;
  /** Exact SPIFFE IDs or `spiffe://td/prefix/*`. */
  allowedCallers: readonly string[];
  /** Path-building candidates besides the presented chain (identity.x509.intermediates). */
  intermediates?: IntermediateSource;
}

/**
 * verdict's mTLS listener fed by the Workload API: its own X509-SVID as the server certificate, every
 * trust domain's X.509 authorities as client CAs, rotated in place. TLS alone accepts any loaded CA for
 * any name, so each connection's leaf is then verified against the bundle of its own trust domain and its
 * SPIFFE ID matched against the allow-list — once per connection; a bundle change bumps the generation
 * and every connection is judged again on its next call.
 */
export class SPIFFEServerTLS implements ServerTLS, CallerCheck {
  readonly requireClientCertificate = true;
  readonly callers: CallerCheck = this;
  private gen = 0;
  private readonly listeners = new Set<(o: SecureContextOptions) => void>();
  // Many connections of one caller present the same chain: verified once until its earliest expiry or a bundle change.
  private readonly verified = new SVIDCache(10_000);

  constructor(private readonly options: SPIFFEServerTLSOptions) {
    options.client.on('x509svid', () => this.changed());
    options.client.on('bundles', () => {
      this.gen++;
      this.changed();
    });
  }

  get generation(): number {
    return this.gen;
  }

  contextOptions(): SecureContextOptions | null {
    const svid = this.options.client.currentX509SVID;
    const cas = this.options.client.allX509Authorities();
    if (!svid || cas.length === 0) return null;
    return { ...ownIdentity(svid), ca: cas.map((c) => c.toString()) };
  }

  onContextChange(listener: (o: SecureContextOptions) => void): void {
    this.listeners.add(listener);
  }

  verify(chain: readonly Buffer[], nowMs: number): CallerVerdict {
    try {
      const { client, allowedCallers, intermediates } = this.options;
      const svid = verifyCallerChain(chain, {
        bundles: client,
        allowedCallers,
        nowMs,
        cache: this.verified,
        ...(intermediates ? { intermediates } : {}),
      });
      return { ok: true, callerID: svid.spiffeID.id, validUntilMs: svid.validUntilMs };
    } catch (err) {
      return { ok: false, code: err instanceof VerdictError ? err.code : 'ERR_SVID_MALFORMED' };
    }
  }

  private changed(): void {
    const options = this.contextOptions();
    if (options) for (const l of this.listeners) l(options);
  }
}

function ownIdentity(svid: OwnX509SVID): SecureContextOptions {
  return {
    cert: svid.certificates.map((c) => c.toString()).join(''),
    key: svid.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
  };
}
