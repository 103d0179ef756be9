import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { ErrorCode } from '../../../src/errors';
import { readBundle } from '../../../src/policy/bundle-reader';
import { rawTarGz } from '../../helpers/bundle-fixtures';

const limits = { maxCompressedBytes: 64 * 1024, maxUncompressedBytes: 256 * 1024, maxFiles: 8 };
const file = (name: string, body = 'x') => ({
  header: { name, type: 'file' as const, size: Buffer.byteLength(body) },
  body: Buffer.from(body),
});
const manifest = file('/.manifest', JSON.stringify({ revision: 'r1', metadata: { verdict: { engine: 'opa' } } }));

describe('readBundle refuses hostile tarballs', () => {
  const cases: { name: string; bytes: () => Promise<Buffer>; code: ErrorCode }[] = [
    { name: 'parent traversal', bytes: () => rawTarGz([manifest, file('/../etc/cron.d/x')]), code: 'ERR_BUNDLE_UNSAFE_PATH' },
    { name: 'nested traversal', bytes: () => rawTarGz([manifest, file('a/../../b')]), code: 'ERR_BUNDLE_UNSAFE_PATH' },
    { name: 'absolute path beyond the root', bytes: () => rawTarGz([manifest, file('//etc/passwd')]), code: 'ERR_BUNDLE_UNSAFE_PATH' },
    { name: 'backslash path', bytes: () => rawTarGz([manifest, file('a\\..\\b')]), code: 'ERR_BUNDLE_UNSAFE_PATH' },
    {
      name: 'symlink',
      bytes: () => rawTarGz([manifest, { header: { name: '/data.json', type: 'symlink', linkname: '/etc/passwd' } }]),
      code: 'ERR_BUNDLE_UNSAFE_PATH',
    },
    {
      name: 'hard link',
      bytes: () => rawTarGz([manifest, { header: { name: '/data.json', type: 'link', linkname: '/.manifest' } }]),
      code: 'ERR_BUNDLE_UNSAFE_PATH',
    },
    { name: 'duplicate entry', bytes: () => rawTarGz([manifest, file('/a'), file('/a')]), code: 'ERR_BUNDLE_INVALID' },
    {
      name: 'too many files',
      bytes: () => rawTarGz([manifest, ...Array.from({ length: 9 }, (_, i) => file(`/f${i}`))]),
      code: 'ERR_BUNDLE_TOO_LARGE',
    },
    // 64 KiB of gzip expanding past 256 KiB: refused while inflating, never fully expanded.
    { name: 'decompression bomb', bytes: async () => gzipSync(Buffer.alloc(8 * 1024 * 1024)), code: 'ERR_BUNDLE_TOO_LARGE' },
    { name: 'compressed size over the bound', bytes: async () => Buffer.alloc(65 * 1024), code: 'ERR_BUNDLE_TOO_LARGE' },
    { name: 'not gzip', bytes: async () => Buffer.from('definitely not a bundle'), code: 'ERR_BUNDLE_INVALID' },
    { name: 'gzip but not tar', bytes: async () => gzipSync(Buffer.from('x'.repeat(1000))), code: 'ERR_BUNDLE_INVALID' },
    { name: 'manifest not JSON', bytes: () => rawTarGz([file('/.manifest', '{nope'), file('/policy.wasm')]), code: 'ERR_BUNDLE_INVALID' },
    { name: 'no engine', bytes: () => rawTarGz([file('/data.json', '{}')]), code: 'ERR_BUNDLE_ENGINE' },
  ];
  it.each(cases)('$name → $code', async ({ bytes, code }) => {
    await expect(readBundle(await bytes(), 'hostile.tar.gz', limits)).rejects.toMatchObject({ code });
  });

  it('reads a well-formed bundle and names its engine from the manifest', async () => {
    const b = await readBundle(await rawTarGz([manifest, file('/policy.wasm', 'w'), file('./data.json', '{}')]), 'ok.tar.gz', limits);
    expect(b.engine).toBe('opa');
    expect(b.revision).toBe('r1');
    expect([...b.files.keys()].sort()).toEqual(['.manifest', 'data.json', 'policy.wasm']);
    expect(b.sha256).toMatch(/^[0-9a-f]{64}$/);
  });
});
