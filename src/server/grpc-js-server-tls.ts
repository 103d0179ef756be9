import type { ServerCredentials } from '@grpc/grpc-js';
import type { SecureContextOptions } from 'node:tls';
import type { ServerTLS } from './server-tls';

/**
 * grpc-js ServerCredentials (createSsl, or a certificate provider) as a ServerTLS, so callers that build
 * credentials the grpc-js way keep working on verdict's own HTTP/2 edge. null for insecure credentials.
 * Reads the credentials' context options and follows their watcher for rotations.
 */
export function serverTLSFromGrpcCredentials(credentials: ServerCredentials): ServerTLS | null {
  if (!credentials._isSecure()) return null;
  const listeners = new Set<(o: SecureContextOptions) => void>();
  let latest = credentials._getSecureContextOptions();
  credentials._addWatcher((options) => {
    if (!options) return;
    latest = options;
    for (const l of listeners) l(options);
  });
  return {
    contextOptions: () => latest,
    onContextChange: (listener) => listeners.add(listener),
    requireClientCertificate: credentials._getConstructorOptions()?.requestCert === true,
  };
}
