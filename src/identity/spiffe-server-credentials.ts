import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import type { Clock } from '../clock';
import { VerdictError } from '../errors';
import { matchesSPIFFEIDPattern } from './spiffe-id';
import { SVIDCache } from './svid-cache';
import type { OwnX509SVID, WorkloadAPIClient } from './workload-api-client';
import { verifyX509SVID } from './x509-svid-verifier';

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
}

/**
 * Server credentials for verdict's gRPC listener: TLS with verdict's SVID, client certificates required,
 * and an interceptor that admits only callers whose X509-SVID verifies against the bundle of its own trust
 * domain (TLS alone accepts any of the loaded CAs for any name) and whose SPIFFE ID is allowed.
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
  const authorize = (raw: Buffer | undefined): string => {
    if (!raw) throw new VerdictError('ERR_SVID_UNTRUSTED', 'no client certificate');
    const key = SVIDCache.keyOf('x509', raw.toString('base64'));
    const nowMs = options.clock.nowMs();
    let svid = cache.get(key, options.client, nowMs);
    if (!svid) {
      svid = verifyX509SVID([new X509Certificate(raw)], options.client, { nowMs });
      cache.set(key, svid);
    }
    if (!options.allowedCallers.some((p) => matchesSPIFFEIDPattern(svid.spiffeID.id, p))) {
      throw new VerdictError('ERR_SVID_UNTRUSTED', `caller ${svid.spiffeID.id} is not allowed`);
    }
    return svid.spiffeID.id;
  };
  return (_method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, mdNext) => {
            try {
              authorize(call.getAuthContext().sslPeerCertificate?.raw);
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
