import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES, VerdictError } from '../../../src/errors';
import { verifyBundle, type BundleTrust } from '../../../src/policy/bundle-verifier';
import { BundleForge, HOSTILE_LIMITS } from '../../helpers/hostile-bundles';

// Property: a good signed bundle mutated byte by byte is either refused with a bundle code, or accepted
// with a valid signature and exactly the good bundle's files — never a crash, a non-coded error, or a
// stall past the bound. Fixed seed and run count: the same budget in CI every time.

const RUNS = 150;
const STALL_MS = 5_000;

describe('byte mutations of a signed bundle (fast-check)', () => {
  let forge: BundleForge;
  let good: Buffer;
  let trust: BundleTrust;
  let goodFiles: Map<string, Buffer>;
  beforeAll(async () => {
    forge = await BundleForge.create();
    good = forge.good();
    trust = {
      limits: HOSTILE_LIMITS,
      sha256: null,
      cosignPublicKey: null,
      opa: { keys: { main: { algorithm: 'ES256', publicKey: createPublicKey(readFileSync(forge.key.publicPath, 'utf8')) } } },
    };
    goodFiles = new Map((await verifyBundle({ bytes: good, origin: 'good' }, trust)).files);
  }, 60_000);

  async function outcome(bytes: Buffer): Promise<'accepted' | string> {
    let timer: NodeJS.Timeout | undefined;
    const stall = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`stalled past ${STALL_MS} ms`)), STALL_MS);
    });
    try {
      const b = await Promise.race([verifyBundle({ bytes, origin: 'mutant' }, trust), stall]);
      expect(b.signer?.opa?.keyId).toBe('main');
      // The signature covers every file: an accepted mutant can differ from the good bundle only in bytes
      // that carry no content (tar header padding, mtime, gzip header fields).
      expect(new Map(b.files)).toEqual(goodFiles);
      return 'accepted';
    } catch (err) {
      if (!(err instanceof VerdictError)) throw err;
      expect(ERROR_CODES[err.code].kind).toBe('bundle');
      return err.code;
    } finally {
      clearTimeout(timer);
    }
  }

  const mutations = (length: number) =>
    fc.array(fc.record({ at: fc.nat({ max: length - 1 }), byte: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 4 });

  function mutate(bytes: Buffer, changes: { at: number; byte: number }[]): Buffer {
    const out = Buffer.from(bytes);
    for (const c of changes) out[c.at] = c.byte;
    return out;
  }

  it('of the compressed file', async () => {
    const seen = new Set<string>();
    await fc.assert(
      fc.asyncProperty(mutations(good.length), async (changes) => {
        seen.add(await outcome(mutate(good, changes)));
      }),
      { numRuns: RUNS, seed: 12 },
    );
    expect(seen.size).toBeGreaterThan(0);
  }, 120_000);

  it('of the tar stream inside (re-compressed, so the mutation reaches the untar and signature steps)', async () => {
    const tar = gunzipSync(good);
    const seen = new Set<string>();
    await fc.assert(
      fc.asyncProperty(mutations(tar.length), async (changes) => {
        seen.add(await outcome(gzipSync(mutate(tar, changes))));
      }),
      { numRuns: RUNS, seed: 12 },
    );
    // The mutations reached past gzip: signature and tar refusals both occurred.
    expect(seen).toContain('ERR_BUNDLE_SIGNATURE');
    expect(seen).toContain('ERR_BUNDLE_INVALID');
  }, 120_000);
});
