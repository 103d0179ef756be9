import { createPublicKey, randomBytes, type X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { MAX_NAME_CONSTRAINT_SUBTREES, MAX_NAMES_PER_CERTIFICATE } from '../../../src/identity/der-extensions';
import { StaticBundleSource } from '../../../src/identity/static-bundle-source';
import { makeTrustBundle } from '../../../src/identity/trust-bundle';
import { MAX_RSA_MODULUS_BITS, MIN_RSA_MODULUS_BITS } from '../../../src/identity/key-limits';
import { nameConstraintCheckCount, signatureCheckCount } from '../../../src/identity/x509-path-builder';
import { verifyX509SVID } from '../../../src/identity/x509-svid-verifier';
import { codeOf } from '../../helpers/error-code';
import { createCA, der, issueX509SVID, reissue, type TestCA } from '../../helpers/svid-authority';

/**
 * Chains an attacker can build without any key of the trust domain (material that only has to name a real CA
 * as its issuer), generated at run time. Each must be refused with its code, and its cost bounded: asserted
 * by what the verifier never reaches (counted checks), never by time.
 */
const ID = 'spiffe://example.org/ns/default/sa/web';

let root: TestCA;
let source: StaticBundleSource;

beforeAll(async () => {
  root = await createCA('example.org root');
  source = new StaticBundleSource([makeTrustBundle('example.org', [root.cert], new Map())]);
});

const verify = (chain: X509Certificate[]): string => codeOf(() => verifyX509SVID(chain, source, { nowMs: Date.now() }));

describe('name constraints cost work only on a verified path', () => {
  it('the constraints of an issuer whose signature fails are never evaluated, at the caps of names and subtrees', async () => {
    // An issuer that names the root as its own issuer but is signed by the attacker's key; the intermediate
    // below it carries as many names as a certificate may, the issuer as many subtrees.
    const attacker = await createCA('attacker');
    const fake = await createCA('unvouched CA', {
      parent: { ...root, keys: attacker.keys },
      nameConstraints: { permittedURIs: Array.from({ length: MAX_NAME_CONSTRAINT_SUBTREES }, (_, i) => `.c${i}.example.net`) },
    });
    const wide = await createCA('many names', {
      parent: fake,
      uris: Array.from({ length: MAX_NAMES_PER_CERTIFICATE }, (_, i) => `s://b${i}.example.net`),
    });
    const leaf = (await issueX509SVID(wide, ID)).cert;
    const before = nameConstraintCheckCount();
    expect(verify([leaf, wide.cert, fake.cert])).toBe('ERR_SVID_SIGNATURE');
    expect(nameConstraintCheckCount() - before).toBe(0);
  });

  it('on a verified path, each certificate below a constrained CA is checked against it once', async () => {
    const constrained = await createCA('constrained', { parent: root, nameConstraints: { permittedURIs: ['example.org'] } });
    const leaf = (await issueX509SVID(constrained, ID)).cert;
    const before = nameConstraintCheckCount();
    expect(verify([leaf, constrained.cert])).toBe('no error');
    expect(nameConstraintCheckCount() - before).toBe(1);
  });
});

const seq = (...parts: Buffer[]): Buffer => der(0x30, Buffer.concat(parts));
const oid = (hex: string): Buffer => der(0x06, Buffer.from(hex, 'hex'));
const bits = (content: Buffer): Buffer => der(0x03, Buffer.concat([Buffer.from([0]), content]));
const unsigned = (n: Buffer): Buffer => der(0x02, Buffer.concat([Buffer.from([0]), n]));
/** A random odd number of `bytes` bytes, top bit set: a modulus (or prime) nobody holds the factors of. */
const odd = (bytes: number): Buffer => {
  const n = randomBytes(bytes);
  n[0] = (n[0] as number) | 0x80;
  n[bytes - 1] = (n[bytes - 1] as number) | 1;
  return n;
};

/** An RSA SubjectPublicKeyInfo: no private key is needed to present one. */
function rsaKey(modulusBits: number, exponent: bigint): Buffer {
  const e = exponent.toString(16);
  const jwk = {
    kty: 'RSA',
    n: odd(modulusBits / 8).toString('base64url'),
    e: Buffer.from(e.padStart(e.length + (e.length % 2), '0'), 'hex').toString('base64url'),
  };
  return createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'der' });
}

/** A DSA SubjectPublicKeyInfo with a 3072-bit p (OpenSSL checks DSA with p up to 10,000 bits). */
function dsaKey(): Buffer {
  const params = seq(unsigned(odd(384)), unsigned(odd(32)), unsigned(Buffer.from([2])));
  return seq(seq(oid('2a8648ce380401'), params), bits(unsigned(randomBytes(384))));
}

/** A CA named `holder` whose certificate carries `spki` (signed by the root), and a leaf its real key signed. */
async function issuerWithKey(spki: Buffer): Promise<{ leaf: X509Certificate; withKey: X509Certificate; genuine: X509Certificate }> {
  const holder = await createCA('holder', { parent: root });
  return { leaf: (await issueX509SVID(holder, ID)).cert, withKey: reissue(holder.cert, root, { spki }), genuine: holder.cert };
}

describe('issuer keys are bounded before any signature check', () => {
  it.each([
    [`an RSA key of ${MAX_RSA_MODULUS_BITS + 8} bits`, () => rsaKey(MAX_RSA_MODULUS_BITS + 8, 65537n)],
    [`an RSA key of ${MIN_RSA_MODULUS_BITS - 8} bits`, () => rsaKey(MIN_RSA_MODULUS_BITS - 8, 65537n)],
    ['an RSA key with the exponent 2^64-1', () => rsaKey(2048, 2n ** 64n - 1n)],
    ['an RSA key with the exponent 3', () => rsaKey(2048, 3n)],
    ['a DSA key', dsaKey],
  ])('%s is refused with ERR_SVID_SIGNATURE and no signature is checked', async (_name, spki) => {
    const { leaf, withKey } = await issuerWithKey(spki());
    const before = signatureCheckCount();
    expect(verify([leaf, withKey])).toBe('ERR_SVID_SIGNATURE');
    expect(signatureCheckCount() - before).toBe(0);
  });

  it(`an RSA key of ${MAX_RSA_MODULUS_BITS} bits with the exponent 65537 is used: its signature check runs (and fails)`, async () => {
    const { leaf, withKey } = await issuerWithKey(rsaKey(MAX_RSA_MODULUS_BITS, 65537n));
    const before = signatureCheckCount();
    expect(verify([leaf, withKey])).toBe('ERR_SVID_SIGNATURE');
    expect(signatureCheckCount() - before).toBe(1);
  });

  it('an RSA-2048 intermediate with the exponent 65537 issues a leaf that verifies', async () => {
    const rsa = await createCA('rsa intermediate', { parent: root, rsaModulusBits: 2048 });
    expect(verify([(await issueX509SVID(rsa, ID)).cert, rsa.cert])).toBe('no error');
  });
});

describe('an issuer key OpenSSL cannot load fails that candidate only', () => {
  const unloadable: [string, () => Buffer][] = [
    ['an unknown key algorithm', () => seq(seq(oid('2a0304')), bits(Buffer.from([1, 2, 3])))],
    ['an EC point that is not on P-256', () => seq(seq(oid('2a8648ce3d0201'), oid('2a8648ce3d030107')), bits(Buffer.from([4, 1, 2, 3])))],
    [
      'an RSA key that does not decode',
      () => seq(seq(oid('2a864886f70d010101'), der(0x05, Buffer.alloc(0))), bits(Buffer.from([1, 2, 3]))),
    ],
  ];

  it.each(unloadable)('%s: the only candidate, the chain is refused with ERR_SVID_SIGNATURE', async (_name, spki) => {
    const { leaf, withKey } = await issuerWithKey(spki());
    expect(verify([leaf, withKey])).toBe('ERR_SVID_SIGNATURE');
  });

  it.each(unloadable)('%s: tried first, the next candidate of the same name completes the path', async (_name, spki) => {
    const { leaf, withKey, genuine } = await issuerWithKey(spki());
    expect(verify([leaf, withKey, genuine])).toBe('no error');
  });
});

describe('a validity time OpenSSL cannot read is refused, not compared', () => {
  const DAY = 86_400_000;
  const generalized = (at: Date): Buffer => der(0x18, Buffer.from(`${at.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`));
  const unreadable: [string, () => Buffer][] = [
    [
      'a GeneralizedTime without Z as notAfter',
      () => seq(generalized(new Date(Date.now() - DAY)), der(0x18, Buffer.from('20991231235959'))),
    ],
    ['a UTCTime of non-digits as notBefore', () => seq(der(0x17, Buffer.from('2x0101000000Z')), generalized(new Date(Date.now() + DAY)))],
  ];

  it.each(unreadable)('%s on the leaf: ERR_SVID_MALFORMED', async (_name, validity) => {
    expect(verify([reissue((await issueX509SVID(root, ID)).cert, root, { validity: validity() })])).toBe('ERR_SVID_MALFORMED');
  });

  it.each(unreadable)('%s on an intermediate: ERR_SVID_MALFORMED', async (_name, validity) => {
    const intermediate = await createCA('intermediate', { parent: root });
    const leaf = (await issueX509SVID(intermediate, ID)).cert;
    expect(verify([leaf, reissue(intermediate.cert, root, { validity: validity() })])).toBe('ERR_SVID_MALFORMED');
  });
});
