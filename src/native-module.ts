import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { VerdictError, type ErrorCode } from './errors';
import { packageRoot } from './package-root';

/** Where `npm run build:native` puts `file` (native/binding.gyp's targets). */
export function nativeAddonPath(file: string): string {
  return join(packageRoot(), 'native', 'build', 'Release', file);
}

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

/** requireNative, kept only if the addon exports the function `fn` (else `missing` says why). */
export function requireNativeFunction<T>(
  path: string,
  fn: keyof T & string,
  missing = `${path} has no ${fn}()`,
): { addon: T } | { reason: string } {
  const loaded = requireNative<Partial<T>>(path);
  if ('reason' in loaded) return loaded;
  return typeof loaded.addon[fn] === 'function' ? { addon: loaded.addon as T } : { reason: missing };
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
