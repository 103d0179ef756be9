import { z } from 'zod';

/**
 * Bounds shared by free-form strings of the config. Each value is echoed in logs and errors, so each has
 * a length a real value never reaches.
 */

/** A host name or IP literal to listen on: RFC 1035 §2.3.4 caps a DNS name at 253 characters in text. */
export const hostSchema = z.string().min(1).max(253);

/**
 * Linux sun_path holds 108 bytes with the terminating NUL (unix(7)); a longer path is cut short without an
 * error, so verdict would listen on, or connect to, another path than the one configured and logged.
 */
export const MAX_UNIX_SOCKET_PATH_BYTES = 107;

const sunPathMessage = `a Unix socket path is at most ${MAX_UNIX_SOCKET_PATH_BYTES} bytes (Linux sun_path)`;
const fitsSunPath = (path: string): boolean => Buffer.byteLength(path, 'utf8') <= MAX_UNIX_SOCKET_PATH_BYTES;

/**
 * A socket verdict connects to, in SPIFFE_ENDPOINT_SOCKET form (`unix:///path`, `unix:/path`, a bare path,
 * or `tcp://host:port`), read as workloadAPITarget (src/identity/workload-api-protos.ts) reads it.
 */
export const socketTargetSchema = z
  .string()
  .min(1)
  .max(4096)
  .refine(
    (target) => {
      if (target.startsWith('tcp:')) return true;
      const path = target.startsWith('unix://') ? target.slice('unix://'.length) : target.replace(/^unix:/, '');
      return fitsSunPath(path);
    },
    { message: sunPathMessage },
  );

/** A filesystem path: Linux PATH_MAX is 4096 bytes with the terminating NUL. */
export const pathSchema = z.string().min(1).max(4095);

/** An http(s) URL: 8 KiB, about the request line common HTTP servers take (nginx 8 KiB, Apache 8190). */
export const httpURLSchema = z.url({ protocol: /^https?$/ }).max(8192);

/** An HTTP header name. */
export const headerNameSchema = z.string().max(256);

/** An HTTP header value, Authorization included: 8 KiB, what servers commonly take for one header. */
export const headerValueSchema = z.string().max(8192);

/** A name, identifier or label: key ids, scopes, audiences, trust domains, entrypoints, label values. */
export const nameSchema = z.string().max(1024);

/** A Unix socket path verdict listens on. */
export const unixSocketPathSchema = pathSchema.refine(fitsSunPath, { message: sunPathMessage });
