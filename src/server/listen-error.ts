import { VerdictError } from '../errors';

/** What the OS says when a listener cannot take its address (EADDRINUSE is the usual first-run one). */
const BIND_ERRORS: Record<string, string> = {
  EADDRINUSE: 'is already in use',
  EACCES: 'needs privileges verdict does not have',
  EADDRNOTAVAIL: 'is not an address of this host',
};

/**
 * One coded error for a listener that cannot bind, naming the address and the config key to change;
 * any other failure is passed through. grpc-js folds the OS code into its message, node:net sets `code`.
 */
export function listenError(err: unknown, address: string, configKey: string): unknown {
  const e = err as { code?: unknown; message?: unknown };
  const text = `${typeof e.code === 'string' ? e.code : ''} ${typeof e.message === 'string' ? e.message : ''}`;
  const os = Object.keys(BIND_ERRORS).find((code) => text.includes(code));
  if (!os) return err;
  return new VerdictError('ERR_LISTEN', `${address} ${BIND_ERRORS[os]} (${os}); set ${configKey} to another port`, { cause: err });
}
