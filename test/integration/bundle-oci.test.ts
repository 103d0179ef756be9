import { createPublicKey, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningVerdict } from '../../src/main';
import { DEFAULT_BUNDLE_LIMITS } from '../../src/policy/bundle';
import type { BundleLoader } from '../../src/policy/bundle-loader';
import { OCI_MEDIA_TYPES, OCIBundleSource, type OCISourceOptions } from '../../src/policy/bundle-source-oci';
import { StagedBundle } from '../../src/policy/bundle-staged';
import type { ActivePolicy, PolicyStore } from '../../src/policy/policy-store';
import { verifyBundle } from '../../src/policy/bundle-verifier';
import { cosign, opaBuild, revisionPolicy } from '../helpers/bundle-fixtures';
import { digestOf, ociSourceSets, pushBlob, pushBundle, pushManifest, startRegistry, type Registry } from '../helpers/bundle-oci';
import { nextActivation } from '../helpers/bundle-publish';
import { checkClient, headerValue, httpCheckRequest, startTestVerdict, tempDir } from '../helpers/verdict-harness';

const REPO = 'policies/authz';
const MiB = 2 ** 20;

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
    verdict = await startTestVerdict(ociSourceSets(registry.url, REPO, 10, 30));
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
    if (artifact === null) throw new Error('first fetch must deliver');
    expect(artifact.ociDigest).toBe(digestA);
    const staged = artifact.bytes as StagedBundle;
    try {
      expect((await staged.bytes()).equals(bundles.A)).toBe(true);
    } finally {
      staged.close();
    }
  });

  it('streams the bundle layer into a bundle worker: checked there, none of it held on the event loop', async () => {
    const layer = randomBytes(20 * MiB + 5);
    await pushBundle(registry.url, REPO, 'large', layer);
    const before = process.memoryUsage().external;
    const artifact = await source({ reference: 'large' }).fetch();
    const staged = artifact?.bytes;
    if (!(staged instanceof StagedBundle)) throw new Error('the layer must come staged in a bundle worker');
    try {
      expect({ size: staged.size, sha256: `sha256:${staged.sha256}` }).toEqual({ size: layer.length, sha256: digestOf(layer) });
      // Read on the event loop, the layer alone would add 20 MiB here (twice, with the chunks of the read).
      expect(process.memoryUsage().external - before).toBeLessThan(4 * MiB);
    } finally {
      staged.close();
    }
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
    const trust = {
      limits: DEFAULT_BUNDLE_LIMITS,
      sha256: null,
      opa: null,
      cosignPublicKey: createPublicKey(readFileSync(join(dir, 'k.pub'), 'utf8')),
    };
    expect((await verifyBundle(artifact, trust)).signer?.cosign?.form).toBe('sigstore-bundle');
    // The same bundle pushed without its signature layer is refused under the same trust.
    await pushBundle(registry.url, REPO, 'unsigned', bundles.A);
    const unsigned = await source({ reference: 'unsigned' }).fetch();
    await expect(verifyBundle(unsigned as NonNullable<typeof unsigned>, trust)).rejects.toMatchObject({ code: 'ERR_BUNDLE_SIGNATURE' });
  });
});

describe('OCI manifests and layers an attacker controls, refused while the good bundle serves', () => {
  const HOSTILE = 'policies/hostile';
  const MAX = 256 * 1024;
  let registry: Registry;
  let verdict: RunningVerdict;
  let evil: Buffer;
  let goodBytes: Buffer;

  beforeAll(async () => {
    registry = await startRegistry();
    const [good, other] = await Promise.all(['GOOD', 'EVIL'].map((r) => opaBuild({ files: revisionPolicy(r), revision: r })));
    evil = readFileSync(other as string);
    goodBytes = readFileSync(good as string);
    await pushBundle(registry.url, HOSTILE, 'latest', goodBytes);
    verdict = await startTestVerdict([...ociSourceSets(registry.url, HOSTILE, 10, 30), `bundles.limits.maxCompressedBytes=${MAX}`]);
  });

  afterAll(async () => {
    await verdict?.stop();
    await registry?.stop();
  });

  /**
   * Moves the tag with `push` and waits for a refusal with `code` — or for an activation, which fails the
   * test at once; every Check meanwhile and after is answered by GOOD.
   */
  async function expectRefused(push: () => Promise<unknown>, code: string): Promise<void> {
    const client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
    const loader = verdict.bundles as BundleLoader;
    let activated: string | null = null;
    const onActivated = (a: ActivePolicy): void => void (activated = a.bundle.revision);
    loader.on('activated', onActivated);
    try {
      let done = false;
      const refused = refusalWithCode(verdict.policy, code).then(() => (done = true));
      await push();
      const answers: (string | undefined)[] = [];
      while (!done && activated === null) {
        answers.push(headerValue((await client.check(httpCheckRequest({}))).okResponse?.headers, 'x-bundle-rev'));
      }
      expect(activated).toBeNull();
      await refused;
      answers.push(headerValue((await client.check(httpCheckRequest({}))).okResponse?.headers, 'x-bundle-rev'));
      expect(new Set(answers)).toEqual(new Set(['GOOD']));
    } finally {
      loader.off('activated', onActivated);
      client.close();
    }
  }

  it('serves the good bundle first', async () => {
    expect(verdict.policy.current?.bundle.revision).toBe('GOOD');
  });

  it('refuses a layer larger than maxCompressedBytes by its descriptor, before downloading it (ERR_BUNDLE_TOO_LARGE)', async () => {
    await expectRefused(() => pushBundle(registry.url, HOSTILE, 'latest', randomBytes(MAX + 1)), 'ERR_BUNDLE_TOO_LARGE');
  });

  it('refuses a layer whose served bytes are not its digest (ERR_BUNDLE_HASH_MISMATCH), though they are a valid bundle', async () => {
    // A layer of evil's length is pushed, then its stored bytes are replaced by evil, a well-formed bundle:
    // only the digest check (in the bundle worker) stands between it and activation.
    const placeholder = randomBytes(evil.length);
    const digest = await pushBlob(registry.url, HOSTILE, placeholder);
    writeFileSync(registry.blobPath(digest), evil);
    const layer = { mediaType: OCI_MEDIA_TYPES.bundleLayer, digest, size: placeholder.length };
    await expectRefused(() => pushManifest(registry.url, HOSTILE, 'latest', [layer]), 'ERR_BUNDLE_HASH_MISMATCH');
  });

  it('refuses a manifest with two bundle layers (ERR_BUNDLE_INVALID) rather than picking one of them', async () => {
    // Both layers are well-formed bundles with their true digests (EVIL first): only the count can refuse them.
    const layers = await Promise.all(
      [evil, goodBytes].map(async (b) => ({
        mediaType: OCI_MEDIA_TYPES.bundleLayer,
        digest: await pushBlob(registry.url, HOSTILE, b),
        size: b.length,
      })),
    );
    await expectRefused(() => pushManifest(registry.url, HOSTILE, 'latest', layers), 'ERR_BUNDLE_INVALID');
  });
});

/** The next refusal the store counts with `code` (the source retries a refused tag, so others may come first). */
function refusalWithCode(store: PolicyStore, code: string): Promise<void> {
  return new Promise((resolve) => {
    const onRejected = (err: { code: string }): void => {
      if (err.code !== code) return;
      store.off('rejected', onRejected);
      resolve();
    };
    store.on('rejected', onRejected);
  });
}
