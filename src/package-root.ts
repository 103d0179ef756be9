import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The project root (where package.json is), whether running from src/ (tests) or dist/src/ (built). */
export function packageRoot(): string {
  let dir = __dirname;
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new TypeError('verdict package root not found');
    dir = up;
  }
  return dir;
}

/** The embedded default policy bundle, built from policies/default by `npm run build`. */
export function defaultBundlePath(): string {
  return join(packageRoot(), 'dist', 'bundles', 'default.tar.gz');
}
