import type { ServerCredentials } from '@grpc/grpc-js';
import type { Config } from '../config/schema';
import type { IntermediateSource } from '../identity/intermediate-source';
import type { WorkloadAPIClient } from '../identity/workload-api-client';
import { serverTLSFromGrpcCredentials } from './grpc-js-server-tls';
import type { ServerTLS } from './server-tls';
import { SPIFFEServerTLS } from './spiffe-server-tls';

/**
 * The gRPC listener's TLS: an explicit ServerTLS or grpc-js credentials win; else verdict's SVID from the Workload API with the
 * caller allow-list when identity.mtls is enabled; else none (plaintext h2c).
 */
export function selectServerTLS(
  config: Config,
  workloadAPI: WorkloadAPIClient | null,
  intermediates: IntermediateSource | undefined,
  given: { credentials?: ServerCredentials; tls?: ServerTLS },
): ServerTLS | null {
  if (given.tls) return given.tls;
  if (given.credentials) return serverTLSFromGrpcCredentials(given.credentials);
  if (workloadAPI && config.identity.mtls.enabled)
    return new SPIFFEServerTLS({
      client: workloadAPI,
      allowedCallers: config.identity.mtls.allowedCallers,
      ...(intermediates ? { intermediates } : {}),
    });
  return null;
}
