import { createHash } from 'node:crypto';
import type { PolicyBundle } from './bundle';

/**
 * A Cedar bundle from in-memory files (tests, benches, `verdict bundle build`): the same shape readBundle
 * gives, with a sha256 over the file contents in path order so the preparse id is stable per content.
 */
export function cedarBundleFromFiles(files: Record<string, string>, metadata: Record<string, unknown> = {}): PolicyBundle {
  const map = new Map<string, Buffer>(Object.entries(files).map(([p, t]) => [p, Buffer.from(t)]));
  const hash = createHash('sha256');
  for (const p of [...map.keys()].sort())
    hash
      .update(p)
      .update('\0')
      .update(map.get(p) as Buffer);
  return {
    name: 'cedar-test',
    revision: '',
    sha256: hash.digest('hex'),
    engine: 'cedar',
    manifest: { metadata: { verdict: { engine: 'cedar', ...metadata } } },
    files: map,
    compressedBytes: 0,
  };
}
