import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { checkBundleRoots } from '../../../src/policy/bundle-roots';
import { signOPABundle, verifyOPASignature } from '../../../src/policy/bundle-signature-opa';
import { codeOf, codeOfAsync } from '../../helpers/error-code';

const files = (entries: Record<string, string>): Map<string, Buffer> =>
  new Map(Object.entries(entries).map(([k, v]) => [k, Buffer.from(v)]));

describe('manifest roots, as opa enforces them', () => {
  const cases: { name: string; roots: unknown; files: Record<string, string>; wasm?: string; code: string }[] = [
    { name: 'no roots: everything allowed', roots: undefined, files: { 'data.json': '{"any":1}' }, code: 'no error' },
    { name: 'data under its root', roots: ['acl'], files: { 'data.json': '{"acl":{"x":1}}' }, code: 'no error' },
    { name: 'data in a root directory', roots: ['acl/users'], files: { 'acl/users/data.json': '[1,2]' }, code: 'no error' },
    { name: 'data outside the roots', roots: ['acl'], files: { 'data.json': '{"acl":{},"other":{"x":1}}' }, code: 'ERR_BUNDLE_ROOTS' },
    {
      name: 'data on the way to a root but not an object',
      roots: ['acl/users'],
      files: { 'data.json': '{"acl":[1]}' },
      code: 'ERR_BUNDLE_ROOTS',
    },
    { name: 'data in a directory outside the roots', roots: ['acl'], files: { 'other/data.json': '{}' }, code: 'ERR_BUNDLE_ROOTS' },
    { name: 'segment-wise: "acl" does not own "aclx"', roots: ['acl'], files: { 'data.json': '{"aclx":1}' }, code: 'ERR_BUNDLE_ROOTS' },
    { name: 'overlapping roots', roots: ['a', 'a/b'], files: {}, code: 'ERR_BUNDLE_ROOTS' },
    { name: 'rego package under a root', roots: ['envoy'], files: { 'p.rego': '# c\npackage envoy.authz\n' }, code: 'no error' },
    { name: 'rego package outside the roots', roots: ['envoy'], files: { 'p.rego': 'package system.authz\n' }, code: 'ERR_BUNDLE_ROOTS' },
    { name: 'wasm entrypoint outside the roots', roots: ['envoy'], files: {}, wasm: 'other/allow', code: 'ERR_BUNDLE_ROOTS' },
    { name: 'roots not a list of strings', roots: [1], files: {}, code: 'ERR_BUNDLE_ROOTS' },
  ];
  it.each(cases)('$name → $code', ({ roots, files: f, wasm, code }) => {
    const manifest = {
      ...(roots !== undefined ? { roots: roots as string[] } : {}),
      ...(wasm ? { wasm: [{ entrypoint: wasm, module: '/policy.wasm' }] } : {}),
    };
    expect(codeOf(() => checkBundleRoots({ manifest, files: files(f) }))).toBe(code);
  });
});

describe('signature key ids resolve to configured keys only (own properties)', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const keys = { main: { algorithm: 'ES256' as const, publicKey } };
  const signedWith = (keyId: string): Map<string, Buffer> => {
    const f = files({ 'policy.wasm': 'w' });
    f.set('.signatures.json', signOPABundle(f, { privateKey, algorithm: 'ES256', keyId, issuedAtSec: 1 }));
    return f;
  };
  it.each(['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf'])('kid "%s" → ERR_BUNDLE_SIGNATURE', async (kid) => {
    const run = (): Promise<unknown> => verifyOPASignature(signedWith(kid), { keys });
    expect(await codeOfAsync(run)).toBe('ERR_BUNDLE_SIGNATURE');
    // Refused as an unknown key, not by tripping over a prototype member.
    await expect(run()).rejects.toThrow(`signature key id "${kid}" is not configured`);
  });
  it('a large data.json is hashed off the event loop to the same canonical digest; a tampered one is refused', async () => {
    const data = JSON.stringify({ users: Array.from({ length: 20_000 }, (_, i) => ({ id: `u${i}`, score: 1.5, tags: ['a', 'b'] })) });
    const f = files({ 'policy.wasm': 'w', 'data.json': data });
    expect(f.get('data.json')?.length).toBeGreaterThan(256 * 1024);
    f.set('.signatures.json', signOPABundle(f, { privateKey, algorithm: 'ES256', keyId: 'main', issuedAtSec: 1 }));
    expect((await verifyOPASignature(f, { keys })).keyId).toBe('main');
    f.set('data.json', Buffer.from(data.replace('"u7"', '"u8"')));
    expect(await codeOfAsync(() => verifyOPASignature(f, { keys }))).toBe('ERR_BUNDLE_SIGNATURE');
  });
  it('the configured kid verifies', async () => {
    expect((await verifyOPASignature(signedWith('main'), { keys })).keyId).toBe('main');
  });
});
