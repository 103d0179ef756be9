import { execFile } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { toolPath } from '../../../src/cli/tools';
import type { ErrorCode } from '../../../src/errors';
import { DEFAULT_BUNDLE_LIMITS } from '../../../src/policy/bundle';
import { readBundle } from '../../../src/policy/bundle-reader';
import { SIGNATURES_FILE, signOPABundle, type OPAVerificationConfig } from '../../../src/policy/bundle-signature-opa';
import { verifyBundle, type BundleTrust } from '../../../src/policy/bundle-verifier';
import { OFF_LOOP_BYTES } from '../../../src/policy/bundle-worker';
import { writeBundle } from '../../../src/policy/bundle-writer';
import { claimsFile, makeKeyPair, opaBuild, readBytes, revisionPolicy, type KeyPair } from '../../helpers/bundle-fixtures';
import { tempDir } from '../../helpers/verdict-harness';

const run = promisify(execFile);

function trust(opa: OPAVerificationConfig | null, sha256: string | null = null): BundleTrust {
  return { limits: DEFAULT_BUNDLE_LIMITS, sha256, opa, cosignPublicKey: null };
}

/** A bundle with one file replaced, re-packed: what an attacker who cannot sign would deliver. */
async function withFile(bytes: Buffer, name: string, content: Buffer | null): Promise<Buffer> {
  const files = new Map((await readBundle(bytes, 'x')).files);
  if (content === null) files.delete(name);
  else files.set(name, content);
  return writeBundle(files);
}

describe('OPA bundle signatures (made by the real opa build --signing-key)', () => {
  let rsa: KeyPair;
  let ec: KeyPair;
  let other: KeyPair;
  let rsaSigned: Buffer;
  let ecSigned: Buffer;
  let unsigned: Buffer;

  beforeAll(async () => {
    rsa = makeKeyPair('rsa');
    ec = makeKeyPair('ec');
    other = makeKeyPair('rsa');
    const files = { ...revisionPolicy('A'), 'data.json': '{"limits": {"rate": 1.50, "name": "caf\\u00e9 \\u2028"}, "b": [1, 2e3]}' };
    [rsaSigned, ecSigned, unsigned] = await Promise.all([
      opaBuild({
        files,
        signingKey: rsa.privatePath,
        signingAlg: 'RS256',
        claimsFile: claimsFile({ iat: 1700000000, scope: 'prod' }),
      }).then(readBytes),
      opaBuild({ files, signingKey: ec.privatePath, signingAlg: 'ES256' }).then(readBytes),
      opaBuild({ files }).then(readBytes),
    ]);
  });

  // opa build with --claims-file writes no kid: the key id comes from config, as in OPA's own verifier.
  const rsaKey = (scope?: string): OPAVerificationConfig => ({
    keys: { default: { algorithm: 'RS256', publicKey: createPublicKey(rsa.publicPEM), scope } },
    keyId: 'default',
  });

  it('accepts an RS256 bundle from opa build and reports the signer', async () => {
    const b = await verifyBundle({ bytes: rsaSigned, origin: 'rsa' }, trust(rsaKey('prod')));
    expect(b.signer?.opa).toMatchObject({ keyId: 'default', algorithm: 'RS256', issuedAtSec: 1700000000, scope: 'prod' });
  });

  it('accepts an ES256 bundle from opa build', async () => {
    const b = await verifyBundle(
      { bytes: ecSigned, origin: 'ec' },
      trust({ keys: { default: { algorithm: 'ES256', publicKey: createPublicKey(ec.publicPEM) } } }),
    );
    expect(b.signer?.opa?.algorithm).toBe('ES256');
  });

  const refusals: { name: string; bytes: () => Promise<Buffer>; config: () => OPAVerificationConfig; code: ErrorCode }[] = [
    { name: 'unsigned bundle with a key configured', bytes: async () => unsigned, config: () => rsaKey(), code: 'ERR_BUNDLE_SIGNATURE' },
    {
      name: 'signed by another key',
      bytes: async () => rsaSigned,
      config: () => ({
        keys: { default: { algorithm: 'RS256', publicKey: createPublicKey(other.publicPEM), scope: 'prod' } },
        keyId: 'default',
      }),
      code: 'ERR_BUNDLE_SIGNATURE',
    },
    {
      name: 'tampered policy.wasm',
      bytes: () => withFile(rsaSigned, 'policy.wasm', Buffer.from('evil')),
      config: () => rsaKey('prod'),
      code: 'ERR_BUNDLE_SIGNATURE',
    },
    {
      name: 'tampered data.json',
      bytes: () => withFile(rsaSigned, 'data.json', Buffer.from('{"limits":{"rate":99}}')),
      config: () => rsaKey('prod'),
      code: 'ERR_BUNDLE_SIGNATURE',
    },
    {
      name: 'extra unsigned file',
      bytes: () => withFile(rsaSigned, 'extra.json', Buffer.from('{}')),
      config: () => rsaKey('prod'),
      code: 'ERR_BUNDLE_SIGNATURE',
    },
    {
      name: 'signed file removed',
      bytes: () => withFile(rsaSigned, 'data.json', null),
      config: () => rsaKey('prod'),
      code: 'ERR_BUNDLE_SIGNATURE',
    },
    { name: 'scope mismatch', bytes: async () => rsaSigned, config: () => rsaKey('staging'), code: 'ERR_BUNDLE_SIGNATURE' },
    {
      name: 'algorithm differs from the configured key',
      bytes: async () => ecSigned,
      config: () => ({ keys: { default: { algorithm: 'RS256', publicKey: createPublicKey(rsa.publicPEM) } } }),
      code: 'ERR_BUNDLE_SIGNATURE',
    },
    {
      name: 'key id not configured',
      bytes: async () => rsaSigned,
      config: () => ({ keys: { other: { algorithm: 'RS256', publicKey: createPublicKey(rsa.publicPEM) } } }),
      code: 'ERR_BUNDLE_SIGNATURE',
    },
    {
      name: 'garbage .signatures.json',
      bytes: () => withFile(rsaSigned, SIGNATURES_FILE, Buffer.from('{"signatures":["a.b"]}')),
      config: () => rsaKey('prod'),
      code: 'ERR_BUNDLE_SIGNATURE',
    },
  ];
  it.each(refusals)('refuses: $name ($code)', async ({ bytes, config, code }) => {
    await expect(verifyBundle({ bytes: await bytes(), origin: 't' }, trust(config()))).rejects.toMatchObject({ code });
  });

  it('refuses a validly signed bundle whose sha256 is not the pinned one (replay of an old signed bundle)', async () => {
    const pinned = (await readBundle(ecSigned, 'x')).sha256;
    await expect(verifyBundle({ bytes: rsaSigned, origin: 'old' }, trust(rsaKey('prod'), pinned))).rejects.toMatchObject({
      code: 'ERR_BUNDLE_HASH_MISMATCH',
    });
  });

  it.each(['RS256', 'PS256', 'ES256'] as const)('verdict bundle signing (%s) is accepted by the real opa', async (alg) => {
    const keys = alg === 'ES256' ? ec : rsa;
    const files = new Map((await readBundle(unsigned, 'u')).files);
    files.set(
      SIGNATURES_FILE,
      signOPABundle(files, {
        privateKey: createPrivateKey(readFileSync(keys.privatePath)),
        algorithm: alg,
        keyId: 'k1',
        issuedAtSec: 1,
      }),
    );
    const path = join(tempDir(), 'signed.tar.gz');
    writeFileSync(path, await writeBundle(files));
    // opa build verifies an input bundle's signature with --verification-key before re-building it.
    await run(toolPath('opa'), [
      'build',
      '-b',
      path,
      '--verification-key',
      keys.publicPath,
      '--verification-key-id',
      'k1',
      '--signing-alg',
      alg,
      '-o',
      join(tempDir(), 'out.tar.gz'),
    ]);
    const b = await verifyBundle(
      { bytes: await readBytes(path), origin: 'v' },
      trust({ keys: { k1: { algorithm: alg, publicKey: createPublicKey(keys.publicPEM) } } }),
    );
    expect(b.signer?.opa?.keyId).toBe('k1');
  });

  // `opa sign` hashes data.json as OPA canonicalizes it; verdict's byte canonicalizer (in the bundle worker,
  // for a file this large) must reach the same digest on text that is far from canonical.
  it('accepts a large data.json signed by the real opa sign (unsorted keys, escapes, duplicates, numbers as written); one value changed is refused', async () => {
    const rows = Array.from(
      { length: 6_000 },
      (_, i) => `{ "z": ${i}.50, "a": "<&>\\u00e9 ${i}", "\\u00e9": [1e3, -0, null], "é": true, "m": {"y": "\u2028", "x": ${i}} }`,
    );
    const data = Buffer.from(`{\n  "rows": [\n${rows.join(',\n')}\n],\n  "b": 1.50, "b": 2.50\n}\n`);
    expect(data.length).toBeGreaterThan(OFF_LOOP_BYTES);
    const dir = tempDir();
    const files = new Map((await readBundle(unsigned, 'u')).files);
    files.set('data.json', data);
    for (const [name, bytes] of files) {
      mkdirSync(dirname(join(dir, name)), { recursive: true });
      writeFileSync(join(dir, name), bytes);
    }
    // Run inside the bundle directory so that the listed names are the bundle's own.
    await run(toolPath('opa'), ['sign', '--signing-key', rsa.privatePath, '--bundle', '.', '--output-file-path', '.'], { cwd: dir });
    files.set(SIGNATURES_FILE, readFileSync(join(dir, SIGNATURES_FILE)));
    const config = { keys: { k: { algorithm: 'RS256' as const, publicKey: createPublicKey(rsa.publicPEM) } }, keyId: 'k' };
    const b = await verifyBundle({ bytes: await writeBundle(files), origin: 'opa-sign' }, trust(config));
    expect(b.files.get('data.json')?.equals(data)).toBe(true);
    const changed = Buffer.from(data.toString('utf8').replace('"x": 5999', '"x": 5998'));
    expect(changed.equals(data)).toBe(false);
    await expect(
      verifyBundle({ bytes: await writeBundle(new Map([...files, ['data.json', changed]])), origin: 't' }, trust(config)),
    ).rejects.toMatchObject({ code: 'ERR_BUNDLE_SIGNATURE' });
  });
});
