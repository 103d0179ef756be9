import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { readBundle } from '../../../src/policy/bundle-reader';
import { OPAEngine } from '../../../src/policy/engine-opa';
import { opaBuild } from '../../helpers/bundle-fixtures';

// The entrypoint a bundle's manifest names (metadata.verdict.entrypoint) is bundle content: any string.
// Each bundle is built by the real `opa build -t wasm` with one compiled entrypoint, envoy/authz/allow.

const OPTIONS = { entrypoint: 'envoy/authz/allow', maxMemoryPages: 1024, recycleMemoryPages: 256 };

async function bundleNaming(entrypoint: string) {
  const path = await opaBuild({
    files: {
      'authz.rego': 'package envoy.authz\n\nallow := true\n',
      '.manifest': JSON.stringify({ metadata: { verdict: { entrypoint } } }),
    },
  });
  return readBundle(await readFile(path), path);
}

describe('an OPA manifest entrypoint that is not compiled in', () => {
  // Before: entrypoints["constructor"] is Object's constructor function; opa_eval took it as id 0, so the
  // bundle loaded and envoy/authz/allow decided every request in place of the rule the manifest named.
  it.each(['constructor', 'toString', '__proto__', 'hasOwnProperty', 'envoy/authz/nosuch'])(
    'refuses a manifest naming "%s", ERR_BUNDLE_ENGINE',
    async (entrypoint) => {
      await expect(OPAEngine.create(await bundleNaming(entrypoint), OPTIONS)).rejects.toMatchObject({
        code: 'ERR_BUNDLE_ENGINE',
        message: expect.stringContaining('is not compiled into policy.wasm'),
      });
    },
  );

  it('names a 512 KiB entrypoint in its refusal by its first 256 characters only', async () => {
    const refused = OPAEngine.create(await bundleNaming('e'.repeat(512 * 1024)), OPTIONS).then(
      () => null,
      (err: unknown) => err as Error,
    );
    const err = await refused;
    expect(err).toMatchObject({ code: 'ERR_BUNDLE_ENGINE' });
    expect(err!.message.length).toBeLessThan(1024);
  });
});
