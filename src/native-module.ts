import { existsSync } from 'node:fs';
import { VerdictError, type ErrorCode } from './errors';

/** A native module built by `npm run build:native`, or why it cannot be used here (not built, fails to load). */
export function requireNative<T>(path: string): { addon: T } | { reason: string } {
  if (!existsSync(path)) return { reason: `native addon ${path} is not built (npm run build:native)` };
  try {
    // A native module cannot be imported statically: it exists only where build:native succeeded.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return { addon: require(path) as T };
  } catch (err) {
    return { reason: `native addon ${path} failed to load: ${(err as Error).message}` };
  }
}

/**
 * Calls into a native addon and turns what it throws into a VerdictError with `code`; the addon's own code
 * (bpf/addon: "EBPF_<step>", "EBPF_KT_<step>") and message are kept in the message.
 */
export function callNative<T>(code: ErrorCode, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    const e = err as { code?: string; message?: string };
    throw new VerdictError(code, `${e.code ?? 'EBPF'}: ${e.message ?? String(err)}`, { cause: err });
  }
}
