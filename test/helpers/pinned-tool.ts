import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../src/package-root';

/** Tools only the tests use (installed by scripts/setup-tools.sh, pinned). */
export type TestTool = 'prometheus' | 'promtool' | 'helm';

/** `.tools/bin/<name>`; throws (so the test fails loudly, never skips) when it is not installed. */
export function pinnedTool(name: TestTool): string {
  const path = join(packageRoot(), '.tools', 'bin', name);
  const installer = name === 'promtool' ? 'prometheus' : name;
  if (!existsSync(path)) throw new Error(`${name} is not installed in .tools/bin: run scripts/setup-tools.sh ${installer}`);
  return path;
}
