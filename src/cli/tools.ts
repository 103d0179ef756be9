import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../package-root';

/** A pinned tool installed by scripts/setup-tools.sh into .tools/bin, else the bare name (PATH). */
export function toolPath(name: 'opa' | 'envoy' | 'spire-server' | 'spire-agent' | 'ghz'): string {
  const local = join(packageRoot(), '.tools', 'bin', name);
  return existsSync(local) ? local : name;
}
