import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningVerdict } from '../../src/main';
import { DEFAULT_BUNDLE_LIMITS } from '../../src/policy/bundle';
import type { BundleLoader } from '../../src/policy/bundle-loader';
import { OCI_MEDIA_TYPES, OCIBundleSource, type OCISourceOptions } from '../../src/policy/bundle-source-oci';
import { verifyBundle } from '../../src/policy/bundle-verifier';
import { cosign, opaBuild, revisionPolicy } from '../helpers/bundle-fixtures';
import { pushBundle, startRegistry, type Registry } from '../helpers/bundle-oci';
import { nextActivation } from '../helpers/bundle-publish';
import { checkClient, headerValue, httpCheckRequest, startTestVerdict, tempDir } from '../helpers/verdict-harness';

const REPO = 'policies/authz';

describe('OCI registry source (real distribution registry on loopback)', () => {
  let registry: Registry;
  let verdict: RunningVerdict;
  let bundles: Record<'A' | 'B', Buffer>;
  let digestA: string;

  const source = (o: Partial<OCISourceOptions>): OCIBundleSource =>
    new OCIBundleSource({
      registry: registry.url,
      repository: REPO,
      reference: 'latest',
      digest: null,
      authorization: null,
      minDelayMs: 10,
      maxDelayMs: 20,
      timeoutMs: 5000,
      maxBytes: DEFAULT_BUNDLE_LIMITS.maxCompressedBytes,
      ...o,
    });

  beforeAll(async () => {
    registry = await startRegistry();
    const [a, b] = await Promise.all(['A', 'B'].map((r) => opaBuild({ files: revisionPolicy(r), revision: r })));
    bundles = { A: readFileSync(a as string), B: readFileSync(b as string) };
    digestA = await pushBundle(registry.url, REPO, 'latest', bundles.A);
    verdict = await startTestVerdict([
      'bundles.source.type=oci',
      `bundles.source.registry=${registry.url}`,
      `bundles.source.repository=${REPO}`,
      'bundles.source.reference=latest',
      'bundles.source.minDelayMs=10',
      'bundles.source.maxDelayMs=30',
    ]);
  });

  afterAll(async () => {
    await verdict?.stop();
    await registry?.stop();
  });

  it('pulls the tagged bundle, then follows the tag when it moves', async () => {
    const client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
    try {
      expect(headerValue((await client.check(httpCheckRequest({}))).okResponse?.headers, 'x-bundle-rev')).toBe('A');
      const activated = nextActivation(verdict.bundles as BundleLoader);
      await pushBundle(registry.url, REPO, 'latest', bundles.B);
      expect((await activated).bundle.revision).toBe('B');
      expect(headerValue((await client.check(httpCheckRequest({}))).okResponse?.headers, 'x-bundle-rev')).toBe('B');
    } finally {
      client.close();
    }
  });

  it('pulls by digest: the old bundle stays reachable by its digest', async () => {
    const artifact = await source({ reference: digestA }).fetch();
    expect(artifact?.ociDigest).toBe(digestA);
    expect(artifact?.bytes.equals(bundles.A)).toBe(true);
  });

  it('refuses a tag whose manifest is not the pinned digest (ERR_BUNDLE_HASH_MISMATCH)', async () => {
    // "latest" now names B; the pin names A.
    await expect(source({ digest: digestA }).fetch()).rejects.toMatchObject({ code: 'ERR_BUNDLE_HASH_MISMATCH' });
  });

  it('carries a cosign sigstore bundle as a layer and verifies it with the public key', async () => {
    const dir = tempDir('verdict-oci-cosign-');
    const path = join(dir, 'bundle.tar.gz');
    writeFileSync(path, bundles.A);
    await cosign(['generate-key-pair', '--output-key-prefix', join(dir, 'k')]);
    await cosign([
      'sign-blob',
      '--key',
      join(dir, 'k.key'),
      '--tlog-upload=false',
      '--yes',
      '--new-bundle-format',
      '--bundle',
      join(dir, 's.json'),
      path,
    ]);
    const digest = await pushBundle(registry.url, REPO, 'signed', bundles.A, [
      { mediaType: OCI_MEDIA_TYPES.sigstoreBundle, data: readFileSync(join(dir, 's.json')) },
    ]);
    const artifact = await source({ reference: 'signed', digest }).fetch();
    if (artifact === null) throw new Error('first fetch must deliver');
    const trust = { limits: DEFAULT_BUNDLE_LIMITS, sha256: null, opa: null, cosignPublicKeyPEM: readFileSync(join(dir, 'k.pub'), 'utf8') };
    expect((await verifyBundle(artifact, trust)).signer?.cosign?.form).toBe('sigstore-bundle');
    // The same bundle pushed without its signature layer is refused under the same trust.
    await pushBundle(registry.url, REPO, 'unsigned', bundles.A);
    const unsigned = await source({ reference: 'unsigned' }).fetch();
    await expect(verifyBundle(unsigned as NonNullable<typeof unsigned>, trust)).rejects.toMatchObject({ code: 'ERR_BUNDLE_SIGNATURE' });
  });
});
