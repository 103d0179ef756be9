import { closeSync, mkdirSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readPolicyDir } from '../../../src/cli/command-lint';
import { DEFAULT_BUNDLE_LIMITS } from '../../../src/policy/bundle';
import { fifo } from '../../helpers/fifo';
import { tempDir } from '../../helpers/verdict-harness';

/** A policy directory with one good policy file and a manifest, plus what `add` puts in it. */
function policyDir(add: (dir: string) => void = () => undefined): string {
  const dir = tempDir('verdict-policy-dir-');
  mkdirSync(join(dir, 'authz'));
  writeFileSync(join(dir, 'authz', 'policy.rego'), 'package authz\n');
  writeFileSync(join(dir, '.manifest'), '{"roots":["authz"]}');
  add(dir);
  return dir;
}

async function refusal(dir: string): Promise<{ code: string; message: string }> {
  const err = await readPolicyDir(dir).then(
    () => new Error('expected a refusal'),
    (e: unknown) => e,
  );
  return err as { code: string; message: string };
}

// `verdict bundle lint <dir>` and `verdict bundle build` read a policy directory that may come from a pull
// request: it is read with the bounds a bundle is.
describe('a policy directory is read as a bundle is: regular files, bounded in size, count and depth', () => {
  it('reads its .rego and .cedar files by relative path, and its manifest', async () => {
    const dir = policyDir((d) => writeFileSync(join(d, 'authz', 'p.cedar'), 'permit(principal, action, resource);'));
    const read = await readPolicyDir(dir);
    expect([...read.files.keys()].sort()).toEqual(['authz/p.cedar', 'authz/policy.rego']);
    expect(read.manifest).toEqual({ roots: ['authz'] });
  });

  it('refuses a FIFO named *.rego without blocking on it (ERR_BUNDLE_FILE_TYPE)', async () => {
    let ends: { readEnd: number; writeEnd: number } | undefined;
    const dir = policyDir((d) => (ends = fifo(join(d, 'authz'), 'pipe.rego')));
    try {
      expect(await refusal(dir)).toMatchObject({ code: 'ERR_BUNDLE_FILE_TYPE', message: expect.stringContaining('is a FIFO') });
    } finally {
      if (ends) for (const fd of [ends.readEnd, ends.writeEnd]) closeSync(fd);
    }
  });

  it('refuses a symlink to /dev/zero named *.rego without reading it (ERR_BUNDLE_FILE_TYPE)', async () => {
    const dir = policyDir((d) => symlinkSync('/dev/zero', join(d, 'authz', 'zero.rego')));
    expect(await refusal(dir)).toMatchObject({ code: 'ERR_BUNDLE_FILE_TYPE', message: expect.stringContaining('character device') });
  });

  it('refuses a policy file over maxFileBytes (ERR_BUNDLE_TOO_LARGE)', async () => {
    // Sparse: its size is what is judged, before a byte is read.
    const dir = policyDir((d) => {
      writeFileSync(join(d, 'authz', 'big.rego'), '');
      truncateSync(join(d, 'authz', 'big.rego'), DEFAULT_BUNDLE_LIMITS.maxFileBytes + 1);
    });
    expect((await refusal(dir)).code).toBe('ERR_BUNDLE_TOO_LARGE');
  });

  it(`refuses more than maxFiles (${DEFAULT_BUNDLE_LIMITS.maxFiles}) policy files (ERR_BUNDLE_TOO_LARGE)`, async () => {
    const dir = policyDir((d) => {
      for (let i = 0; i < DEFAULT_BUNDLE_LIMITS.maxFiles; i++) writeFileSync(join(d, 'authz', `p${i}.rego`), '');
    });
    expect(await refusal(dir)).toMatchObject({ code: 'ERR_BUNDLE_TOO_LARGE', message: expect.stringContaining('policy files') });
  });

  it(`refuses directories nested past maxPathDepth (${DEFAULT_BUNDLE_LIMITS.maxPathDepth}) (ERR_BUNDLE_INVALID)`, async () => {
    const dir = policyDir((d) => {
      const deep = join(d, ...Array.from({ length: DEFAULT_BUNDLE_LIMITS.maxPathDepth }, () => 'd'));
      mkdirSync(deep, { recursive: true });
      writeFileSync(join(deep, 'x.rego'), 'package x\n');
    });
    expect(await refusal(dir)).toMatchObject({ code: 'ERR_BUNDLE_INVALID', message: expect.stringContaining('directories deep') });
  });

  it('refuses a manifest that is not JSON (ERR_BUNDLE_INVALID) or not a regular file (ERR_BUNDLE_FILE_TYPE)', async () => {
    expect((await refusal(policyDir((d) => writeFileSync(join(d, '.manifest'), '{roots')))).code).toBe('ERR_BUNDLE_INVALID');
    const link = policyDir((d) => {
      rmSync(join(d, '.manifest'));
      symlinkSync('/dev/zero', join(d, '.manifest'));
    });
    expect((await refusal(link)).code).toBe('ERR_BUNDLE_FILE_TYPE');
  });
});
