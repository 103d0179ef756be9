import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { ErrorCode } from '../../../src/errors';
import { readBundle } from '../../../src/policy/bundle-reader';
import { codeOfAsync } from '../../helpers/error-code';
import { tarBytes, tarGz, type TarEntry } from '../../helpers/tar-writer';

// Hostile archives written by the test's own ustar writer (no honest packer writes these).
const limits = {
  maxCompressedBytes: 1024 * 1024,
  maxUncompressedBytes: 2 * 1024 * 1024,
  maxFiles: 16,
  maxFileBytes: 512 * 1024,
  maxPathDepth: 6,
};
const manifest: TarEntry = { name: '/.manifest', body: JSON.stringify({ revision: 'r', metadata: { verdict: { engine: 'opa' } } }) };
const wasm: TarEntry = { name: '/policy.wasm', body: 'w' };

const cases: { name: string; bytes: () => Buffer; code: ErrorCode }[] = [
  {
    name: 'entry declares more bytes than it holds',
    bytes: () => tarGz([manifest, { name: '/data.json', body: '{}', declaredSize: 4096 }], { end: false }),
    code: 'ERR_BUNDLE_INVALID',
  },
  {
    name: 'entry declares more bytes than the end blocks hold',
    bytes: () => tarGz([manifest, { name: '/data.json', body: '{}', declaredSize: 8192 }]),
    code: 'ERR_BUNDLE_INVALID',
  },
  { name: 'truncated gzip stream', bytes: () => tarGz([manifest, wasm]).subarray(0, 40), code: 'ERR_BUNDLE_INVALID' },
  {
    name: 'header checksum broken',
    bytes: () => gzipSync(Buffer.concat([Buffer.alloc(148, 0x41), Buffer.alloc(364)])),
    code: 'ERR_BUNDLE_INVALID',
  },
  {
    name: 'gzip bomb (zeros inside a tar entry)',
    bytes: () => gzipSync(tarBytes([manifest, ...[1, 2, 3, 4, 5].map((i) => ({ name: `/z${i}`, body: Buffer.alloc(500 * 1024) }))])),
    code: 'ERR_BUNDLE_TOO_LARGE',
  },
  { name: 'gzip bomb (plain zeros)', bytes: () => gzipSync(Buffer.alloc(16 * 1024 * 1024)), code: 'ERR_BUNDLE_TOO_LARGE' },
  {
    name: 'file over the per-file bound (declared)',
    bytes: () => tarGz([manifest, { name: '/data.json', body: '', declaredSize: 600 * 1024 }], { end: false }),
    code: 'ERR_BUNDLE_TOO_LARGE',
  },
  {
    name: 'file over the per-file bound (real)',
    bytes: () => tarGz([manifest, { name: '/data.json', body: Buffer.alloc(600 * 1024, 0x20) }]),
    code: 'ERR_BUNDLE_TOO_LARGE',
  },
  {
    name: 'directory flood',
    bytes: () => tarGz([manifest, ...Array.from({ length: 20 }, (_, i) => ({ name: `/d${i}/`, type: 'directory' as const }))]),
    code: 'ERR_BUNDLE_TOO_LARGE',
  },
  { name: 'path too deep', bytes: () => tarGz([manifest, { name: '/a/b/c/d/e/f/g/data.json', body: '{}' }]), code: 'ERR_BUNDLE_TOO_LARGE' },
  { name: 'directory traversal', bytes: () => tarGz([manifest, { name: '../etc/', type: 'directory' }]), code: 'ERR_BUNDLE_UNSAFE_PATH' },
  { name: 'file traversal', bytes: () => tarGz([manifest, { name: '/a/../../x', body: 'x' }]), code: 'ERR_BUNDLE_UNSAFE_PATH' },
  {
    name: 'symlink',
    bytes: () => tarGz([manifest, { name: '/policy.wasm', type: 'symlink', linkname: '/etc/passwd' }]),
    code: 'ERR_BUNDLE_UNSAFE_PATH',
  },
  {
    name: 'hard link',
    bytes: () => tarGz([manifest, { name: '/policy.wasm', type: 'link', linkname: '.manifest' }]),
    code: 'ERR_BUNDLE_UNSAFE_PATH',
  },
  { name: 'character device', bytes: () => tarGz([manifest, { name: '/zero', type: 'char' }]), code: 'ERR_BUNDLE_UNSAFE_PATH' },
  { name: 'block device', bytes: () => tarGz([manifest, { name: '/sda', type: 'block' }]), code: 'ERR_BUNDLE_UNSAFE_PATH' },
  { name: 'FIFO', bytes: () => tarGz([manifest, { name: '/pipe', type: 'fifo' }]), code: 'ERR_BUNDLE_UNSAFE_PATH' },
  { name: 'duplicate file', bytes: () => tarGz([manifest, wasm, wasm]), code: 'ERR_BUNDLE_INVALID' },
  {
    name: 'duplicate directory',
    bytes: () => tarGz([manifest, wasm, { name: '/d/', type: 'directory' }, { name: 'd', type: 'directory' }]),
    code: 'ERR_BUNDLE_INVALID',
  },
  {
    name: 'file also a directory',
    bytes: () => tarGz([manifest, wasm, { name: '/a', body: 'x' }, { name: '/a/b', body: 'y' }]),
    code: 'ERR_BUNDLE_INVALID',
  },
  {
    name: 'manifest over its bound',
    bytes: () => tarGz([{ name: '/.manifest', body: `{"x":"${'a'.repeat(1024 * 1024)}"}` }, wasm]),
    code: 'ERR_BUNDLE_TOO_LARGE',
  },
];

describe('bounded untar: hostile archives are refused with a code, never a crash', () => {
  it.each(cases)('$name → $code', async ({ bytes, code }) => {
    expect(await codeOfAsync(readBundle(bytes(), 'hostile.tar.gz', limits))).toBe(code);
  });

  it('accepts the same shapes when honest (root and nested directories, nested data)', async () => {
    const b = await readBundle(
      tarGz([
        { name: './', type: 'directory' },
        manifest,
        wasm,
        { name: '/a/', type: 'directory' },
        { name: '/a/data.json', body: '{"x":1}' },
      ]),
      'ok.tar.gz',
      limits,
    );
    expect([...b.files.keys()].sort()).toEqual(['.manifest', 'a/data.json', 'policy.wasm']);
    expect(b.files.get('a/data.json')?.toString()).toBe('{"x":1}');
  });
});
