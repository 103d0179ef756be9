import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BundlePersist } from '../../../src/policy/bundle-persist';
import { StagedBundle } from '../../../src/policy/bundle-staged';
import { PolicyStore } from '../../../src/policy/policy-store';
import { buildTestBundle, tempDir } from '../../helpers/verdict-harness';

const MiB = 2 ** 20;
const POLICY = { 'authz.rego': 'package envoy.authz\nimport rego.v1\ndefault allow := true\n' };

describe('the persisted bundle and a local bundle are read by a bundle worker, like a watched file', () => {
  it('loads the meta alone; the bundle file is staged in a worker only when asked for, intact', async () => {
    const bundle = readFileSync(await buildTestBundle(POLICY));
    const dir = tempDir('verdict-persist-');
    const persist = new BundlePersist(dir, 32 * MiB);
    const sha256 = createHash('sha256').update(bundle).digest('hex');
    await persist.save({ bytes: bundle, origin: 'src' }, bundle, sha256, 7, 0);
    const loaded = await persist.load();
    expect({ sha256: loaded?.sha256, iat: loaded?.opaIssuedAtSec }).toEqual({ sha256, iat: 7 });
    const artifact = await loaded?.artifact();
    const staged = artifact?.bytes;
    if (!(staged instanceof StagedBundle)) throw new Error('the persisted bundle must come staged in a bundle worker');
    try {
      expect({ origin: artifact?.origin, size: staged.size, sha256: staged.sha256 }).toEqual({
        origin: 'persisted src',
        size: bundle.length,
        sha256,
      });
      expect((await staged.bytes()).equals(bundle)).toBe(true);
    } finally {
      staged.close();
    }
  });

  it.each([
    { name: 'missing (a torn save)', replace: (p: string) => rmSync(p) },
    { name: 'a FIFO (never opened blocking)', replace: (p: string) => (rmSync(p), execFileSync('mkfifo', [p])) },
  ])('gives no artifact when the persisted bundle file is $name', async ({ replace }) => {
    const bundle = readFileSync(await buildTestBundle(POLICY));
    const dir = tempDir('verdict-persist-');
    const persist = new BundlePersist(dir, 32 * MiB);
    await persist.save({ bytes: bundle, origin: 'src' }, bundle, 'x', null, 0);
    replace(join(dir, 'bundle.tar.gz'));
    expect(await (await persist.load())?.artifact()).toBeNull();
  });

  it('activates a local bundle file (staged like a watched one) and refuses a FIFO with ERR_BUNDLE_FILE_TYPE, the active bundle kept', async () => {
    const store = new PolicyStore({ entrypoint: 'envoy/authz/allow', maxMemoryPages: 1024, recycleMemoryPages: 256 });
    const path = await buildTestBundle(POLICY);
    const active = await store.activateFile(path);
    expect(active.bundle.sha256).toBe(createHash('sha256').update(readFileSync(path)).digest('hex'));
    const fifo = join(tempDir('verdict-local-'), 'bundle.tar.gz');
    execFileSync('mkfifo', [fifo]);
    await expect(store.activateFile(fifo)).rejects.toMatchObject({ code: 'ERR_BUNDLE_FILE_TYPE' });
    expect(store.current).toBe(active);
    active.engine.close();
  });
});
