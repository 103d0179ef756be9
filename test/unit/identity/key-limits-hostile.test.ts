import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/clock';
import { jwtIssuersSchema } from '../../../src/config/sections/jwt-issuers';
import { MAX_RSA_MODULUS_BITS, MIN_RSA_MODULUS_BITS } from '../../../src/identity/key-limits';
import { OIDCTokenVerifier } from '../../../src/identity/oidc-token-verifier';
import { StaticBundleSource } from '../../../src/identity/static-bundle-source';
import { makeTrustBundle, parseBundleFile, parseJWTBundle } from '../../../src/identity/trust-bundle';
import { verifyJWTSVID } from '../../../src/identity/jwt-svid-verifier';
import { signatureCheckCount } from '../../../src/identity/x509-path-builder';
import { verifyX509SVID } from '../../../src/identity/x509-svid-verifier';
import { codeOf, codeOfAsync } from '../../helpers/error-code';
import { TestOIDCIssuer, type IssuerKey } from '../../helpers/oidc-issuer';
import { createCA, issueX509SVID } from '../../helpers/svid-authority';
import { tempDir } from '../../helpers/verdict-harness';

/**
 * Key material the other side chooses — a trust bundle's authorities (Workload API, static files), an OIDC
 * issuer's JWK Set — bounded by one rule (src/identity/key-limits.ts): RSA of 2048 to 8192 bits with the
 * exponent 65537, ECDSA on a NIST curve, Ed25519. Keys are generated at run time; a public RSA key needs no
 * private half, so the oversized and odd-exponent ones are random odd moduli.
 */
const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

/** An RSA public JWK with a random odd modulus of `bits` bits (nobody holds its factors). */
function rsaJWK(bits: number, exponent = 65537n): Record<string, string> {
  const n = randomBytes(bits / 8);
  n[0] = (n[0] as number) | 0x80;
  n[n.length - 1] = (n[n.length - 1] as number) | 1;
  const e = exponent.toString(16);
  return { kty: 'RSA', n: b64url(n), e: b64url(Buffer.from(e.padStart(e.length + (e.length % 2), '0'), 'hex')) };
}

const publicJWK = (key: KeyObject): Record<string, string> => key.export({ format: 'jwk' }) as Record<string, string>;

/** Keys outside the bounds, by name: each must be refused wherever a key is taken. */
const OUT_OF_BOUNDS: [string, () => Record<string, string>][] = [
  [`RSA of ${MIN_RSA_MODULUS_BITS - 1024} bits`, () => rsaJWK(MIN_RSA_MODULUS_BITS - 1024)],
  ['RSA of 512 bits', () => rsaJWK(512)],
  [`RSA of ${MAX_RSA_MODULUS_BITS * 2} bits`, () => rsaJWK(MAX_RSA_MODULUS_BITS * 2)],
  ['RSA with the exponent 3', () => rsaJWK(2048, 3n)],
  ['RSA with the exponent 2^64-1', () => rsaJWK(2048, 2n ** 64n - 1n)],
  ['EC on secp256k1', () => publicJWK(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey)],
  ['Ed448', () => publicJWK(generateKeyPairSync('ed448').publicKey)],
];

/** A compact JWS over `claims` signed with `key` by node:crypto (jose would refuse to sign with a small key). */
function signedToken(key: KeyObject, alg: 'RS256' | 'ES256', kid: string, claims: object): string {
  const h = b64url(JSON.stringify({ alg, kid, typ: 'JWT' }));
  const p = b64url(JSON.stringify({ aud: 'verdict', exp: Math.floor(Date.now() / 1000) + 300, ...claims }));
  const sig = sign('sha256', Buffer.from(`${h}.${p}`), alg === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : key);
  return `${h}.${p}.${b64url(sig)}`;
}

describe('X.509 bundle authorities', () => {
  it(`a root of ${MIN_RSA_MODULUS_BITS - 1024} bits in the bundle verifies nothing: ERR_SVID_SIGNATURE, no signature checked`, async () => {
    const weak = await createCA('weak root', { rsaModulusBits: MIN_RSA_MODULUS_BITS - 1024 });
    const leaf = (await issueX509SVID(weak, 'spiffe://example.org/w')).cert;
    const source = new StaticBundleSource([makeTrustBundle('example.org', [weak.cert], new Map())]);
    const before = signatureCheckCount();
    expect(codeOf(() => verifyX509SVID([leaf], source, { nowMs: Date.now() }))).toBe('ERR_SVID_SIGNATURE');
    expect(signatureCheckCount() - before).toBe(0);
  });

  it(`a root of ${MIN_RSA_MODULUS_BITS} bits in the bundle verifies its leaf (the floor is inclusive)`, async () => {
    const root = await createCA('root 2048', { rsaModulusBits: MIN_RSA_MODULUS_BITS });
    const leaf = (await issueX509SVID(root, 'spiffe://example.org/w')).cert;
    const source = new StaticBundleSource([makeTrustBundle('example.org', [root.cert], new Map())]);
    expect(codeOf(() => verifyX509SVID([leaf], source, { nowMs: Date.now() }))).toBe('no error');
  });
});

describe('JWT bundle authorities (Workload API JWT bundles, SPIFFE bundle files)', () => {
  it.each(OUT_OF_BOUNDS)('a JWT authority that is %s refuses the bundle with ERR_BUNDLE_UNAVAILABLE', (_name, jwk) => {
    const key = { ...jwk(), kid: 'k1', use: 'jwt-svid' };
    expect(codeOf(() => parseJWTBundle('example.org', JSON.stringify({ keys: [key] })))).toBe('ERR_BUNDLE_UNAVAILABLE');
    expect(codeOf(() => parseBundleFile('example.org', JSON.stringify({ keys: [key] })))).toBe('ERR_BUNDLE_UNAVAILABLE');
  });

  it.each([
    [`RSA of ${MIN_RSA_MODULUS_BITS} bits`, () => rsaJWK(MIN_RSA_MODULUS_BITS)],
    [`RSA of ${MAX_RSA_MODULUS_BITS} bits`, () => rsaJWK(MAX_RSA_MODULUS_BITS)],
    ['EC on P-256', () => publicJWK(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey)],
    ['Ed25519', () => publicJWK(generateKeyPairSync('ed25519').publicKey)],
  ])('a JWT authority that is %s is taken', (_name, jwk) => {
    expect([...parseJWTBundle('example.org', JSON.stringify({ keys: [{ ...jwk(), kid: 'k1' }] })).keys()]).toEqual(['k1']);
  });

  it.each([
    ['null', null],
    ['a string', 'k1'],
    ['an array', [1]],
  ])('a keys entry that is %s refuses the bundle with ERR_BUNDLE_UNAVAILABLE (not a TypeError)', (_name, entry) => {
    expect(codeOf(() => parseJWTBundle('example.org', JSON.stringify({ keys: [entry] })))).toBe('ERR_BUNDLE_UNAVAILABLE');
    expect(codeOf(() => parseBundleFile('example.org', JSON.stringify({ keys: [entry] })))).toBe('ERR_BUNDLE_UNAVAILABLE');
  });

  it('a duplicate kid of 100,000 characters is refused with a message that shows at most 64 of them', () => {
    const kid = 'k'.repeat(100_000);
    const key = publicJWK(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
    let message = '';
    try {
      parseJWTBundle(
        'example.org',
        JSON.stringify({
          keys: [
            { ...key, kid },
            { ...key, kid },
          ],
        }),
      );
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('duplicate kid');
    expect(message.length).toBeLessThan(200);
  });

  it(`a JWT-SVID signed by a ${MIN_RSA_MODULUS_BITS - 1024}-bit key never meets a bundle holding it: the bundle is refused`, () => {
    // Before the bound, such a bundle was taken and its tokens failed later at jose's own floor, as ERR_JWT_ALGORITHM.
    const weak = generateKeyPairSync('rsa', { modulusLength: MIN_RSA_MODULUS_BITS - 1024 });
    const text = JSON.stringify({ keys: [{ ...publicJWK(weak.publicKey), kid: 'k1', use: 'jwt-svid' }] });
    expect(codeOf(() => parseBundleFile('example.org', text))).toBe('ERR_BUNDLE_UNAVAILABLE');
  });

  it('a JWT-SVID whose kid is 100,000 characters is refused with a message that shows at most 64 of them', async () => {
    const good = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const source = new StaticBundleSource([
      makeTrustBundle(
        'example.org',
        [],
        parseJWTBundle('example.org', JSON.stringify({ keys: [{ ...publicJWK(good.publicKey), kid: 'k1' }] })),
      ),
    ]);
    const token = signedToken(good.privateKey, 'ES256', 'x'.repeat(100_000), { sub: 'spiffe://example.org/w' });
    let error: { code?: string; message?: string } = {};
    try {
      await verifyJWTSVID(token, source, { nowMs: Date.now(), audiences: ['verdict'], maxTokenBytes: 1 << 20 });
    } catch (err) {
      error = err as Error & { code: string };
    }
    expect(error.code).toBe('ERR_JWT_KEY_UNKNOWN');
    expect(error.message?.length).toBeLessThan(200);
  });
});

describe('OIDC issuer JWK Sets', () => {
  const ISSUER = 'https://issuer.example';
  let good: { privateKey: KeyObject; publicKey: KeyObject };
  let weak: { privateKey: KeyObject; publicKey: KeyObject };
  let dir: string;

  beforeAll(() => {
    good = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    weak = generateKeyPairSync('rsa', { modulusLength: MIN_RSA_MODULUS_BITS - 1024 });
    dir = tempDir('oidc-key-limits-');
  });

  const staticVerifier = (keys: object[], maxKeys = 64): OIDCTokenVerifier => {
    const path = join(dir, `jwks-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(path, JSON.stringify({ keys }));
    const config = jwtIssuersSchema.parse([
      {
        issuer: ISSUER,
        jwksFile: path,
        audiences: ['verdict'],
        algorithms: ['RS256', 'ES256', 'EdDSA'],
        keys: { maxKeys, maxBytes: 1 << 20 },
      },
    ]);
    return new OIDCTokenVerifier(config, systemClock, 1 << 20);
  };
  const goodKey = (): object => ({ ...publicJWK(good.publicKey), kid: 'good', use: 'sig' });

  it.each(OUT_OF_BOUNDS)(
    'a static JWK Set key that is %s is set aside: its token is refused with ERR_TOKEN_JWKS, the good key still verifies',
    async (_name, jwk) => {
      const verifier = staticVerifier([goodKey(), { ...jwk(), kid: 'bad', use: 'sig' }]);
      // The token's signature is beside the point: the key is refused before any check.
      const bad = signedToken(weak.privateKey, 'RS256', 'bad', { iss: ISSUER, sub: 'u' });
      expect(await codeOfAsync(verifier.verify(bad))).toBe('ERR_TOKEN_JWKS');
      expect(await codeOfAsync(verifier.verify(signedToken(good.privateKey, 'ES256', 'good', { iss: ISSUER, sub: 'u' })))).toBe('no error');
    },
  );

  it(`a token signed by a ${MIN_RSA_MODULUS_BITS - 1024}-bit key of the set is refused with ERR_TOKEN_JWKS, naming the key's size`, async () => {
    const verifier = staticVerifier([goodKey(), { ...publicJWK(weak.publicKey), kid: 'weak', use: 'sig' }]);
    let error: { code?: string; message?: string } = {};
    try {
      await verifier.verify(signedToken(weak.privateKey, 'RS256', 'weak', { iss: ISSUER, sub: 'u' }));
    } catch (err) {
      error = err as Error & { code: string };
    }
    expect(error.code).toBe('ERR_TOKEN_JWKS');
    expect(error.message).toContain(`${MIN_RSA_MODULUS_BITS - 1024} bits (at least ${MIN_RSA_MODULUS_BITS})`);
  });

  it('a static JWK Set with one key more than keys.maxKeys is refused with ERR_TOKEN_JWKS', () => {
    const keys = Array.from({ length: 5 }, (_, i) => ({ ...publicJWK(good.publicKey), kid: `k${i}` }));
    expect(codeOf(() => staticVerifier(keys, 4))).toBe('ERR_TOKEN_JWKS');
    expect(codeOf(() => staticVerifier(keys, 5))).toBe('no error');
  });

  it('a token whose kid is 100,000 characters is refused with a message that shows at most 64 of them', async () => {
    const verifier = staticVerifier([goodKey()]);
    let error: { code?: string; message?: string } = {};
    try {
      await verifier.verify(signedToken(good.privateKey, 'ES256', 'x'.repeat(100_000), { iss: ISSUER, sub: 'u' }));
    } catch (err) {
      error = err as Error & { code: string };
    }
    expect(error.code).toBe('ERR_TOKEN_KEY_UNKNOWN');
    expect(error.message?.length).toBeLessThan(200);
  });

  describe('fetched from a real issuer over HTTP', () => {
    let issuer: TestOIDCIssuer;
    beforeAll(async () => {
      issuer = await TestOIDCIssuer.start();
    });
    afterAll(() => issuer.close());

    it(`a published ${MAX_RSA_MODULUS_BITS * 2}-bit key is set aside (ERR_TOKEN_JWKS); the issuer's ES256 key still verifies`, async () => {
      const es = await issuer.newKey('es');
      const huge = { kid: 'huge', publicJWK: { ...rsaJWK(MAX_RSA_MODULUS_BITS * 2), kid: 'huge', use: 'sig' } } as unknown as IssuerKey;
      issuer.publish([es, huge]);
      const config = jwtIssuersSchema.parse([{ issuer: issuer.issuer, audiences: ['verdict'], algorithms: ['RS256', 'ES256'] }]);
      const verifier = new OIDCTokenVerifier(config, systemClock, 1 << 20);
      const forged = signedToken(weak.privateKey, 'RS256', 'huge', { iss: issuer.issuer, sub: 'u' });
      expect(await codeOfAsync(verifier.verify(forged))).toBe('ERR_TOKEN_JWKS');
      expect(await codeOfAsync(verifier.verify(await issuer.sign(es, { sub: 'u' })))).toBe('no error');
    });
  });
});
