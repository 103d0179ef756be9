import { execFile } from 'node:child_process';
import { createPublicKey, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_BUNDLE_LIMITS } from '../../../src/policy/bundle';
import { verifyBundle, type BundleTrust } from '../../../src/policy/bundle-verifier';
import { OFF_LOOP_BYTES } from '../../../src/policy/bundle-worker';
import { cosign, opaBuild, revisionPolicy } from '../../helpers/bundle-fixtures';
import { tempDir } from '../../helpers/verdict-harness';

const run = promisify(execFile);

type Form = 'detached' | 'cosign-bundle' | 'sigstore-bundle';

/** Signatures made by the real cosign (sign-blob with a key, offline: no transparency-log upload). */
describe('cosign signatures over the bundle file (made by the real cosign sign-blob)', () => {
  let dir: string;
  let bundlePath: string;
  let bundle: Buffer;
  let publicPEM: string;
  let otherPublicPEM: string;
  const signatures = {} as Record<Form, Buffer>;

  const trust = (pem: string | null = publicPEM): BundleTrust => ({
    limits: DEFAULT_BUNDLE_LIMITS,
    sha256: null,
    opa: null,
    cosignPublicKey: pem === null ? null : createPublicKey(pem),
  });

  beforeAll(async () => {
    dir = tempDir('verdict-cosign-');
    bundlePath = await opaBuild({ files: revisionPolicy('C') });
    bundle = readFileSync(bundlePath);
    await cosign(['generate-key-pair', '--output-key-prefix', join(dir, 'signer')]);
    await cosign(['generate-key-pair', '--output-key-prefix', join(dir, 'other')]);
    publicPEM = readFileSync(join(dir, 'signer.pub'), 'utf8');
    otherPublicPEM = readFileSync(join(dir, 'other.pub'), 'utf8');
    const key = ['--key', join(dir, 'signer.key'), '--tlog-upload=false', '--yes'];
    await cosign(['sign-blob', ...key, '--output-signature', join(dir, 'b.sig'), bundlePath]);
    await cosign(['sign-blob', ...key, '--bundle', join(dir, 'b.cosign.json'), bundlePath]);
    await cosign(['sign-blob', ...key, '--new-bundle-format', '--bundle', join(dir, 'b.sigstore.json'), bundlePath]);
    signatures.detached = readFileSync(join(dir, 'b.sig'));
    signatures['cosign-bundle'] = readFileSync(join(dir, 'b.cosign.json'));
    signatures['sigstore-bundle'] = readFileSync(join(dir, 'b.sigstore.json'));
  });

  const forms: Form[] = ['detached', 'cosign-bundle', 'sigstore-bundle'];

  it.each(forms)('accepts the %s form', async (form) => {
    const b = await verifyBundle({ bytes: bundle, origin: 'c', cosignSignature: signatures[form] }, trust());
    expect(b.signer?.cosign?.form).toBe(form);
  });

  it.each(forms)('refuses a tampered bundle with the %s form (ERR_BUNDLE_SIGNATURE)', async (form) => {
    const tampered = Buffer.from(bundle);
    const at = tampered.length - 9;
    tampered[at] = (tampered[at] as number) ^ 0xff; // inside the gzip trailer region: bytes differ, signature must not verify
    await expect(verifyBundle({ bytes: tampered, origin: 't', cosignSignature: signatures[form] }, trust())).rejects.toMatchObject({
      code: 'ERR_BUNDLE_SIGNATURE',
    });
  });

  it('refuses a signature made by another key (ERR_BUNDLE_SIGNATURE)', async () => {
    await expect(
      verifyBundle({ bytes: bundle, origin: 'o', cosignSignature: signatures.detached }, trust(otherPublicPEM)),
    ).rejects.toMatchObject({
      code: 'ERR_BUNDLE_SIGNATURE',
    });
  });

  it('refuses an unsigned bundle when a cosign key is configured (ERR_BUNDLE_SIGNATURE)', async () => {
    await expect(verifyBundle({ bytes: bundle, origin: 'u' }, trust())).rejects.toMatchObject({ code: 'ERR_BUNDLE_SIGNATURE' });
  });

  it('a signed bundle is still refused when it is not the pinned one (ERR_BUNDLE_HASH_MISMATCH)', async () => {
    const pin = '0'.repeat(64);
    await expect(
      verifyBundle({ bytes: bundle, origin: 'p', cosignSignature: signatures.detached }, { ...trust(), sha256: pin }),
    ).rejects.toMatchObject({ code: 'ERR_BUNDLE_HASH_MISMATCH' });
  });

  describe('a bundle large enough to be checked in the bundle worker (OFF_LOOP_BYTES and more)', () => {
    let large: Buffer;
    const largeSigs = {} as Record<Form, Buffer>;
    beforeAll(async () => {
      // Random hex does not compress: the .tar.gz itself passes the off-loop threshold.
      const data = JSON.stringify({ blob: randomBytes(OFF_LOOP_BYTES).toString('hex') });
      const largePath = await opaBuild({ files: { ...revisionPolicy('L'), 'data.json': data } });
      large = readFileSync(largePath);
      const key = ['--key', join(dir, 'signer.key'), '--tlog-upload=false', '--yes'];
      await cosign(['sign-blob', ...key, '--output-signature', join(dir, 'l.sig'), largePath]);
      await cosign(['sign-blob', ...key, '--new-bundle-format', '--bundle', join(dir, 'l.sigstore.json'), largePath]);
      largeSigs.detached = readFileSync(join(dir, 'l.sig'));
      largeSigs['sigstore-bundle'] = readFileSync(join(dir, 'l.sigstore.json'));
    });

    const largeForms: Form[] = ['detached', 'sigstore-bundle'];

    it.each(largeForms)('accepts the %s form', async (form) => {
      expect(large.length).toBeGreaterThanOrEqual(OFF_LOOP_BYTES);
      const b = await verifyBundle({ bytes: large, origin: 'l', cosignSignature: largeSigs[form] }, trust());
      expect(b.signer?.cosign?.form).toBe(form);
    });

    it.each(largeForms)('refuses it tampered with the %s form (ERR_BUNDLE_SIGNATURE)', async (form) => {
      const tampered = Buffer.from(large);
      const at = tampered.length >> 1;
      tampered[at] = (tampered[at] as number) ^ 0xff;
      await expect(verifyBundle({ bytes: tampered, origin: 't', cosignSignature: largeSigs[form] }, trust())).rejects.toMatchObject({
        code: 'ERR_BUNDLE_SIGNATURE',
      });
    });

    it('refuses it under another key (ERR_BUNDLE_SIGNATURE)', async () => {
      await expect(
        verifyBundle({ bytes: large, origin: 'o', cosignSignature: largeSigs.detached }, trust(otherPublicPEM)),
      ).rejects.toMatchObject({ code: 'ERR_BUNDLE_SIGNATURE' });
    });

    it('refuses it when the worker cannot finish within the deadline (ERR_BUNDLE_LOAD_TIMEOUT)', async () => {
      await expect(
        verifyBundle({ bytes: large, origin: 'd', cosignSignature: largeSigs.detached }, { ...trust(), loadTimeoutMs: 1 }),
      ).rejects.toMatchObject({ code: 'ERR_BUNDLE_LOAD_TIMEOUT' });
    });
  });

  it('the CLI verifies a cosign-signed bundle and exits 1 with the code when tampered', async () => {
    const cli = join(__dirname, '..', '..', '..', 'dist', 'src', 'cli', 'main.js');
    const pub = join(dir, 'signer.pub');
    const { stdout } = await run(process.execPath, [
      cli,
      'bundle',
      'verify',
      bundlePath,
      '--cosign-key',
      pub,
      '--signature',
      join(dir, 'b.sig'),
    ]);
    expect(JSON.parse(stdout)).toMatchObject({ verified: true, signer: { cosign: { form: 'detached' } } });
    const bad = join(dir, 'bad.tar.gz');
    writeFileSync(bad, Buffer.concat([bundle, Buffer.from([0])]));
    const failed = await run(process.execPath, [
      cli,
      'bundle',
      'verify',
      bad,
      '--cosign-key',
      pub,
      '--signature',
      join(dir, 'b.sig'),
    ]).catch((e: { code: number; stderr: string }) => e);
    expect(failed).toMatchObject({ code: 1 });
    expect((failed as { stderr: string }).stderr).toContain('ERR_BUNDLE_SIGNATURE');
  });
});
