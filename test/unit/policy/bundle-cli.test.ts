import { execFile } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../../src/package-root';
import { makeKeyPair, opaBuild, revisionPolicy, type KeyPair } from '../../helpers/bundle-fixtures';
import { tempDir } from '../../helpers/verdict-harness';

const run = promisify(execFile);
const cli = join(packageRoot(), 'dist', 'src', 'cli', 'main.js');
const verdict = (...args: string[]) => run(process.execPath, [cli, 'bundle', ...args]);

/** The built CLI, as a user runs it: sign → inspect (claimed signer) → verify (and refusals with their code). */
describe('verdict bundle sign / verify / inspect', () => {
  let key: KeyPair;
  let other: KeyPair;
  let signed: string;

  beforeAll(async () => {
    key = makeKeyPair('ec');
    other = makeKeyPair('ec');
    signed = join(tempDir(), 'signed.tar.gz');
    copyFileSync(await opaBuild({ files: revisionPolicy('S'), revision: 'S' }), signed);
    await verdict('sign', signed, '-k', key.privatePath, '--alg', 'ES256', '--key-id', 'ci', '--scope', 'write');
  });

  it('inspect shows files with hashes and the claimed signer', async () => {
    const out = JSON.parse((await verdict('inspect', signed)).stdout) as Record<string, unknown>;
    expect(out).toMatchObject({
      revision: 'S',
      engine: 'opa',
      signer: { verified: false, keyId: 'ci', algorithm: 'ES256', scope: 'write' },
    });
    expect(out.files).toContainEqual(
      expect.objectContaining({ path: '.signatures.json', sha256: expect.stringMatching(/^[0-9a-f]{64}$/) }),
    );
  });

  it('verify accepts the right key and scope', async () => {
    const out = JSON.parse((await verdict('verify', signed, '--opa-key', key.publicPath, '--alg', 'ES256', '--scope', 'write')).stdout);
    expect(out).toMatchObject({ verified: true, signer: { opa: { keyId: 'ci', algorithm: 'ES256', scope: 'write' } } });
  });

  const refusals: { name: string; args: () => string[]; code: string }[] = [
    {
      name: 'another key',
      args: () => ['--opa-key', other.publicPath, '--alg', 'ES256', '--scope', 'write'],
      code: 'ERR_BUNDLE_SIGNATURE',
    },
    { name: 'wrong scope', args: () => ['--opa-key', key.publicPath, '--alg', 'ES256', '--scope', 'read'], code: 'ERR_BUNDLE_SIGNATURE' },
    { name: 'pinned to another sha256', args: () => ['--sha256', 'f'.repeat(64)], code: 'ERR_BUNDLE_HASH_MISMATCH' },
  ];
  it.each(refusals)('verify refuses $name with exit 1 and $code', async ({ args, code }) => {
    const err = (await verdict('verify', signed, ...args()).catch((e: unknown) => e)) as { code?: number; stderr?: string };
    expect(err.code).toBe(1);
    expect(err.stderr).toContain(code);
  });
});
