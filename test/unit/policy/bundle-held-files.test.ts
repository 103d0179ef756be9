import { createHash, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_BUNDLE_LIMITS } from '../../../src/policy/bundle';
import { hashStructuredJSON } from '../../../src/policy/bundle-json-hash';
import { SIGNATURES_FILE, verifyOPASignature } from '../../../src/policy/bundle-signature-opa';
import type { HeldHashRequest } from '../../../src/policy/bundle-signed-hashes';
import { untarBounded } from '../../../src/policy/bundle-untar';
import { verifyBundle, type BundleTrust } from '../../../src/policy/bundle-verifier';
import { OFF_LOOP_BYTES } from '../../../src/policy/bundle-worker';
import { BundleForge, pack } from '../../helpers/hostile-bundles';

/** JSON well past OFF_LOOP_BYTES whose canonical form differs from its text (spaces, unsorted keys). */
function bigData(tag: string): Buffer {
  const rows = Array.from({ length: 12_000 }, (_, i) => `{ "z": ${i}, "a": "${tag}${i}" }`);
  return Buffer.from(`{ "rows": [${rows.join(', ')}], "b": 1.50 }`);
}

// Large signed files are hashed by the worker that untars them and held there until the JWT verifies.
describe('large signed files: hashed where untarred, held until the signature verifies', () => {
  let forge: BundleForge;
  let trust: BundleTrust;
  beforeAll(async () => {
    forge = await BundleForge.create();
    trust = {
      limits: DEFAULT_BUNDLE_LIMITS,
      sha256: null,
      cosignPublicKey: null,
      opa: { keys: { main: { algorithm: 'ES256', publicKey: createPublicKey(readFileSync(forge.key.publicPath, 'utf8')) } } },
    };
  });

  it('holds back only the large files until asked, then hands them over intact', async () => {
    const data = bigData('h');
    expect(data.length).toBeGreaterThan(OFF_LOOP_BYTES);
    const bytes = pack(forge.sign(new Map([...forge.goodFiles, ['data.json', data]])));
    const u = await untarBounded(bytes, DEFAULT_BUNDLE_LIMITS, { holdFrom: OFF_LOOP_BYTES });
    expect([...u.held]).toEqual([['data.json', data.length]]);
    expect(u.files.has('data.json')).toBe(false);
    // Hashed where it is held, with the algorithm asked for (the verified listing's), structurally or as bytes.
    const hashes = await u.hashHeld([
      { name: 'data.json', algorithm: 'sha384', structured: true },
      { name: 'not-held.json', algorithm: 'sha256', structured: false },
    ]);
    expect(hashes.get('data.json')).toEqual({ algorithm: 'sha384', hash: hashStructuredJSON(data, 'sha384') });
    expect(hashes.get('not-held.json')?.hash).toEqual({ error: expect.stringMatching(/not held/) });
    expect((await u.hashHeld([{ name: 'data.json', algorithm: 'sha256', structured: false }])).get('data.json')?.hash).toBe(
      createHash('sha256').update(data).digest('hex'),
    );
    await u.takeHeld();
    expect(u.files.get('data.json')?.equals(data)).toBe(true);
    expect(u.held.size).toBe(0);
  });

  it('accepts a validly signed bundle whose data.json was checked by its precomputed canonical hash', async () => {
    const data = bigData('a');
    const b = await verifyBundle({ bytes: pack(forge.sign(new Map([...forge.goodFiles, ['data.json', data]]))), origin: 'a' }, trust);
    expect(b.signer?.opa?.keyId).toBe('main');
    expect(b.files.get('data.json')?.equals(data)).toBe(true);
  });

  const refusals = [
    { name: 'large data.json replaced after signing', data: () => bigData('t'), code: 'ERR_BUNDLE_SIGNATURE' },
    {
      name: 'large data.json that is not JSON',
      data: () => Buffer.concat([bigData('n'), Buffer.from(' trailing')]),
      code: 'ERR_BUNDLE_INVALID',
    },
  ];

  it.each(refusals)('refuses: $name ($code)', async ({ data, code }) => {
    const signed = forge.sign(new Map([...forge.goodFiles, ['data.json', bigData('s')]]));
    const tampered = pack(new Map([...signed, ['data.json', data()]]));
    await expect(verifyBundle({ bytes: tampered, origin: 't' }, trust)).rejects.toMatchObject({ code });
  });

  // The JWT is checked before any held file is hashed: a bundle signed by another key costs no 50 MB hash.
  it('hashes held files only after the JWT verified, with the listed algorithm; never for a JWT that fails', async () => {
    const data = bigData('o');
    const signed = forge.sign(new Map([...forge.goodFiles, ['data.json', data]]));
    const small = new Map([...signed].filter(([name]) => name !== 'data.json'));
    const held = new Map([['data.json', data.length]]);
    const asked: HeldHashRequest[][] = [];
    const hashHeld = async (wanted: HeldHashRequest[]): Promise<Map<string, { algorithm: 'sha256'; hash: string }>> => {
      asked.push(wanted);
      return new Map([['data.json', { algorithm: 'sha256', hash: hashStructuredJSON(data, 'sha256') }]]);
    };
    const other = await BundleForge.create();
    const wrongKey = {
      keys: { main: { algorithm: 'ES256' as const, publicKey: createPublicKey(readFileSync(other.key.publicPath, 'utf8')) } },
    };
    await expect(verifyOPASignature(small, wrongKey, { held, hashHeld })).rejects.toMatchObject({ code: 'ERR_BUNDLE_SIGNATURE' });
    expect(asked).toEqual([]);
    expect(small.has(SIGNATURES_FILE)).toBe(true);
    await expect(verifyOPASignature(small, trust.opa!, { held, hashHeld })).resolves.toMatchObject({ keyId: 'main' });
    expect(asked).toEqual([[{ name: 'data.json', algorithm: 'sha256', structured: true }]]);
  });
});
