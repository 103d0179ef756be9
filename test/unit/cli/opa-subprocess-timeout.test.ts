import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lintCacheKey } from '../../../src/cache/cache-lint';
import { buildRegoBundle } from '../../../src/cli/bundle-build';
import { codeOfAsync } from '../../helpers/error-code';
import { tempDir } from '../../helpers/verdict-harness';

// verdict runs opa as a subprocess to build bundles and to lint cache keys (the server lints each bundle it
// loads when cache.lint is on). Neither waited on opa for ever any more.

/**
 * A stand-in for opa that never answers. The real opa does not hang on what verdict gives it (a FIFO in a
 * policy directory is skipped by opa build; lint hands opa parse a regular file it wrote), so a stuck opa,
 * the fault these deadlines are for, is injected.
 */
function stuckOpa(): string {
  const path = join(tempDir('verdict-stuck-opa-'), 'opa');
  writeFileSync(path, '#!/bin/sh\nexec sleep 600\n');
  chmodSync(path, 0o755);
  return path;
}

describe('opa subprocesses have a deadline', () => {
  it('an opa build that does not return is stopped: ERR_BUNDLE_INVALID', async () => {
    const dir = tempDir('verdict-build-stuck-');
    writeFileSync(join(dir, 'authz.rego'), 'package envoy.authz\n\nallow := true\n');
    const built = buildRegoBundle(dir, { out: join(dir, 'out', 'b.tar.gz'), opa: stuckOpa(), opaTimeoutMs: 500 });
    await expect(built).rejects.toMatchObject({ code: 'ERR_BUNDLE_INVALID', message: 'opa build ran past 500 ms and was stopped' });
  }, 30_000);

  it('an opa parse that does not return is stopped: ERR_CACHE_LINT, naming the module', async () => {
    const source = {
      manifest: { metadata: { verdict: { cache: { key: ['attributes.request.http.path'], ttlMs: 5000 } } } },
      files: new Map([['authz.rego', Buffer.from('package envoy.authz\n\nallow := true\n')]]),
    };
    const lint = lintCacheKey(source as Parameters<typeof lintCacheKey>[0], { opa: stuckOpa(), parseTimeoutMs: 500 });
    expect(await codeOfAsync(lint)).toBe('ERR_CACHE_LINT');
    await expect(lint).rejects.toThrow('authz.rego: opa parse failed: ran past 500 ms and was stopped');
  }, 30_000);
});
