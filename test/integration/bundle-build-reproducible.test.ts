import { execFile } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { extract } from 'tar-stream';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/package-root';
import { tempDir } from '../helpers/verdict-harness';

// The built CLI with the pinned opa, as a user runs it (`verdict bundle build`).
const run = promisify(execFile);
const cli = join(packageRoot(), 'dist', 'src', 'cli', 'main.js');
const build = (dir: string, out: string, ...extra: string[]) => run(process.execPath, [cli, 'bundle', 'build', dir, '-o', out, ...extra]);

interface Entry {
  name: string;
  mtime: number;
  uid: number;
  gid: number;
  mode: number;
  data: Buffer;
}

async function entries(gz: Buffer): Promise<Entry[]> {
  const out: Entry[] = [];
  const x = extract();
  const done = new Promise<void>((resolve, reject) => {
    x.on('entry', (h, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => chunks.push(c as Buffer));
      stream.on('end', () => {
        out.push({
          name: h.name,
          mtime: h.mtime?.getTime() ?? -1,
          uid: h.uid ?? -1,
          gid: h.gid ?? -1,
          mode: h.mode ?? -1,
          data: Buffer.concat(chunks),
        });
        next();
      });
    });
    x.on('finish', resolve);
    x.on('error', reject);
  });
  x.end(gunzipSync(gz));
  await done;
  return out;
}

/** A copy of policies/default at `path`, its files given this mtime and mode (what differs between checkouts). */
function copyPolicy(path: string, mtime: Date, mode: number): string {
  cpSync(join(packageRoot(), 'policies', 'default'), path, { recursive: true });
  for (const f of readdirSync(path)) {
    utimesSync(join(path, f), mtime, mtime);
    chmodSync(join(path, f), mode);
  }
  return path;
}

describe('verdict bundle build is reproducible', () => {
  it('two directories, two file times, two builds → byte-identical bundles with root-relative paths', async () => {
    const root = tempDir('verdict-repro-');
    const a = copyPolicy(join(root, 'checkout-one'), new Date('2001-02-03T04:05:06Z'), 0o644);
    mkdirSync(join(root, 'deeper', 'second'), { recursive: true });
    const b = copyPolicy(join(root, 'deeper', 'second', 'checkout-two'), new Date('2031-12-30T23:59:59Z'), 0o600);
    await build(a, join(root, 'one.tar.gz'));
    // Between the builds the clock moves on and the sources are touched again (a fresh checkout).
    utimesSync(join(b, 'authz.rego'), new Date(), new Date());
    await build(b, join(root, 'two.tar.gz'));

    const one = readFileSync(join(root, 'one.tar.gz'));
    const two = readFileSync(join(root, 'two.tar.gz'));
    expect(one.equals(two)).toBe(true);

    // RFC 1952 §2.3.1: no mtime, OS "unknown".
    expect(one.readUInt32LE(4)).toBe(0);
    expect(one[9]).toBe(0xff);
    const list = await entries(one);
    // Paths relative to the bundle root as `opa build` stores them; tests stay out; sorted; fixed headers.
    expect(list.map((e) => e.name)).toEqual(['/.manifest', '/authz.rego', '/data.json', '/policy.wasm']);
    for (const e of list)
      expect({ mtime: e.mtime, uid: e.uid, gid: e.gid, mode: e.mode }).toEqual({ mtime: 0, uid: 0, gid: 0, mode: 0o600 });
    // No trace of the directory built from: not in the manifest, not in the file names compiled into the wasm.
    for (const e of list) {
      expect(e.data.includes('checkout-one'), e.name).toBe(false);
      expect(e.data.includes(root), e.name).toBe(false);
    }
  });

  const OMITTING_MANIFEST = {
    roots: ['envoy'],
    metadata: { verdict: { entrypoint: 'envoy/authz/allow', cache: { key: ['attributes.request.http.method'], ttlMs: 1000 } } },
  };
  const TENANT_POLICY = `package envoy.authz
import rego.v1
default allow := false
allow if input.attributes.request.http.headers["x-tenant"] == "t1"
`;

  function omittingDir(): string {
    const dir = join(tempDir('verdict-lint-build-'), 'policy');
    mkdirSync(dir);
    writeFileSync(join(dir, 'policy.rego'), TENANT_POLICY);
    writeFileSync(join(dir, '.manifest'), JSON.stringify(OMITTING_MANIFEST));
    return dir;
  }

  it('refuses to build a bundle whose declared cache key omits what the policy reads (ERR_CACHE_KEY_OMITS_READ)', async () => {
    const dir = omittingDir();
    const err = await build(dir, join(dir, '..', 'out.tar.gz')).then(
      () => null,
      (e: { stderr: string }) => e,
    );
    expect(err?.stderr).toMatch(/^verdict: ERR_CACHE_KEY_OMITS_READ: .*x-tenant/m);
  });

  it('--no-lint builds it anyway', async () => {
    const dir = omittingDir();
    const { stdout } = await build(dir, join(dir, '..', 'out.tar.gz'), '--no-lint');
    expect(JSON.parse(stdout)).toMatchObject({ engine: 'opa', sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
  });
});
