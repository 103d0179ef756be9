import { VerdictError } from '../errors';

/**
 * What the OS (or the resolver, for a host name) says when a listener cannot take its address, and which
 * part of the address to change. EADDRINUSE is the usual first-run one; ENOTFOUND / EAI_* come from
 * getaddrinfo for a host that does not resolve, EINVAL from an address the OS will not bind.
 */
const BIND_ERRORS: Record<string, { says: string; change: 'port' | 'host' }> = {
  EADDRINUSE: { says: 'is already in use', change: 'port' },
  EACCES: { says: 'needs privileges verdict does not have', change: 'port' },
  EADDRNOTAVAIL: { says: 'is not an address of this host', change: 'host' },
  ENOTFOUND: { says: 'names a host that does not resolve', change: 'host' },
  EAI_AGAIN: { says: 'names a host that could not be resolved now', change: 'host' },
  EAI_FAIL: { says: 'names a host that could not be resolved', change: 'host' },
  EAI_NONAME: { says: 'names a host that does not resolve', change: 'host' },
  EINVAL: { says: 'is not an address a listener can bind', change: 'host' },
};

/** The config keys of a listener: its host and port, or the path of a Unix socket. */
export type ListenKeys = { host: string; port: string } | { path: string };

/**
 * One coded error for a listener that cannot bind, naming the address and the config key to change;
 * any other failure is passed through. grpc-js folds the OS code into its message, node:net sets `code`.
 */
export function listenError(err: unknown, address: string, keys: ListenKeys): unknown {
  const e = err as { code?: unknown; message?: unknown };
  const text = `${typeof e.code === 'string' ? e.code : ''} ${typeof e.message === 'string' ? e.message : ''}`;
  const os = Object.keys(BIND_ERRORS).find((code) => new RegExp(`\\b${code}\\b`).test(text));
  if (!os) return err;
  const { says, change } = BIND_ERRORS[os] as (typeof BIND_ERRORS)[string];
  const advice =
    'path' in keys
      ? `set ${keys.path} to another path`
      : change === 'port'
        ? `set ${keys.port} to another port`
        : `set ${keys.host} to an address of this host`;
  return new VerdictError('ERR_LISTEN', `${address} ${says} (${os}); ${advice}`, { cause: err });
}
