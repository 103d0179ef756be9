import { existsSync } from 'node:fs';

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
