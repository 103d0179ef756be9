import * as grpc from '@grpc/grpc-js';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import type { Clock } from '../clock';
import { VerdictError } from '../errors';
import { NO_INTERMEDIATES, type IntermediateSource } from './intermediate-source';
import { SVIDCache } from './svid-cache';
import { verifyCallerChain } from './verify-caller-chain';
import type { OwnX509SVID, WorkloadAPIClient } from './workload-api-client';

type CAListener = grpc.experimental.CaCertificateUpdateListener;
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener;

/**
 * grpc-js certificate provider fed by the Workload API: verdict's own X509-SVID (chain + key) and the X.509
 * authorities of every trust domain it knows. Each rotation pushes new material, and grpc-js swaps the
 * listener's secure context in place (setSecureContext) — no restart, existing connections keep going.
 */
class WorkloadAPICertificateProvider implements grpc.experimental.CertificateProvider {
  private readonly caListeners = new Set<CAListener>();
  private readonly identityListeners = new Set<IdentityListener>();

  constructor(private readonly client: WorkloadAPIClient) {
    client.on('x509svid', (svid: OwnX509SVID) => {
      const update = identityUpdate(svid);
      for (const l of this.identityListeners) l(update);
    });
    client.on('bundles', () => {
      const update = this.caUpdate();
      for (const l of this.caListeners) l(update);
    });
  }

  addCaCertificateListener(listener: CAListener): void {
    this.caListeners.add(listener);
    listener(this.caUpdate());
  }
  removeCaCertificateListener(listener: CAListener): void {
    this.caListeners.delete(listener);
  }
  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    const svid = this.client.currentX509SVID;
    listener(svid ? identityUpdate(svid) : null);
  }
  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }

  private caUpdate(): grpc.experimental.CaCertificateUpdate | null {
    const cas = this.client.allX509Authorities();
    return cas.length === 0 ? null : { caCertificate: Buffer.from(cas.map((c) => c.toString()).join('')) };
  }
}

function identityUpdate(svid: OwnX509SVID): grpc.experimental.IdentityCertificateUpdate {
  return {
    certificate: Buffer.from(svid.certificates.map((c) => c.toString()).join('')),
    privateKey: Buffer.from(svid.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string),
  };
}

export interface SPIFFEServerCredentialsOptions {
  client: WorkloadAPIClient;
  clock: Clock;
  /** Exact SPIFFE IDs or `spiffe://td/prefix/*`. */
  allowedCallers: readonly string[];
  /** Path-building candidates besides the presented chain (identity.x509.intermediates). */
  intermediates?: IntermediateSource;
}

/**
 * Server credentials for verdict's gRPC listener: TLS with verdict's SVID, client certificates required,
 * and an interceptor that admits only callers whose presented chain verifies (verifyCallerChain: every
 * rule of RFC 5280 §6.1 and X509-SVID) against the bundle of the leaf's own trust domain (TLS alone accepts
 * any of the loaded CAs for any name) and whose SPIFFE ID is allowed; `intermediates` add candidates.
 */
export function createSPIFFEServerCredentials(options: SPIFFEServerCredentialsOptions): grpc.ServerCredentials {
  const provider = new WorkloadAPICertificateProvider(options.client);
  // grpc-js's exported signature names the first parameter "ca", but it is the identity provider; one
  // provider serves both, so the order does not matter here.
  const tls = grpc.experimental.createCertificateProviderServerCredentials(provider, provider, true);
  return grpc.experimental.createServerCredentialsWithInterceptors(tls, [callerAuthorization(options)]);
}

function callerAuthorization(options: SPIFFEServerCredentialsOptions): grpc.ServerInterceptor {
  const cache = new SVIDCache(10_000);
  const intermediates = options.intermediates ?? NO_INTERMEDIATES;
  return (_method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, mdNext) => {
            try {
              verifyCallerChain(presentedChain(call), {
                bundles: options.client,
                allowedCallers: options.allowedCallers,
                nowMs: options.clock.nowMs(),
                intermediates,
                cache,
              });
              mdNext(metadata);
            } catch (err) {
              const code = err instanceof VerdictError ? err.code : 'ERR_SVID_MALFORMED';
              call.sendStatus({ code: grpc.status.PERMISSION_DENIED, details: code });
            }
          },
        });
      },
    });
}

const MAX_PRESENTED = 16;

/**
 * The chain the client presented, leaf first. grpc-js's auth context carries only the leaf, so the TLS
 * socket under the call is asked for the whole chain (`getPeerCertificate(true)` walks the certificates the
 * peer sent, then the local CA store); without it, the leaf alone (fewer candidates only ever deny more).
 */
function presentedChain(call: grpc.ServerInterceptingCallInterface): Buffer[] {
  const socket = (call as unknown as { stream?: { session?: { socket?: TLSSocket } } }).stream?.session?.socket;
  if (socket && typeof socket.getPeerCertificate === 'function') {
    const out: Buffer[] = [];
    const seen = new Set<string>();
    for (
      let c: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
      c?.raw && out.length < MAX_PRESENTED;
      c = c.issuerCertificate
    ) {
      if (seen.has(c.fingerprint256)) break; // a self-signed root points at itself
      seen.add(c.fingerprint256);
      out.push(c.raw);
    }
    if (out.length > 0) return out;
  }
  const leaf = call.getAuthContext().sslPeerCertificate?.raw;
  return leaf ? [leaf] : [];
}
