import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ChainedBundleSource, StaticBundleSource } from '../../../src/identity/static-bundle-source';
import { parseBundleFile, parseDERCertificates, parseJWTBundle } from '../../../src/identity/trust-bundle';
import { createCA, createJWTAuthority, spiffeBundleJSON, type JWTAuthority, type TestCA } from '../../helpers/svid-authority';
import { tempDir } from '../../helpers/verdict-harness';
import { codeOf } from '../../helpers/error-code';

let a: TestCA;
let b: TestCA;
let jwt: JWTAuthority;

beforeAll(async () => {
  [a, b] = await Promise.all([createCA('a'), createCA('b')]);
  jwt = await createJWTAuthority('kid-1');
});

describe('trust bundles', () => {
  it('reads PEM with several authorities', () => {
    const bundle = parseBundleFile('example.org', a.pem + b.pem);
    expect(bundle.x509Authorities.map((c) => c.subject)).toEqual([a.cert.subject, b.cert.subject]);
    expect(bundle.jwtAuthorities.size).toBe(0);
  });

  it('reads a SPIFFE bundle (JWK set) with X.509 and JWT authorities, ignoring unknown uses', () => {
    const doc = JSON.parse(spiffeBundleJSON([a], [jwt])) as { keys: object[] };
    doc.keys.push({ use: 'future-svid', kty: 'EC' });
    const bundle = parseBundleFile('example.org', JSON.stringify(doc));
    expect(bundle.x509Authorities).toHaveLength(1);
    expect([...bundle.jwtAuthorities.keys()]).toEqual(['kid-1']);
  });

  it('splits concatenated DER as the Workload API sends it', () => {
    const der = Buffer.concat([a.cert.raw, b.cert.raw]);
    expect(parseDERCertificates(der).map((c) => c.fingerprint256)).toEqual([a.cert.fingerprint256, b.cert.fingerprint256]);
  });

  it('gives the same digest to the same authorities and a new one after a change', () => {
    expect(parseBundleFile('td', a.pem).digest).toBe(parseBundleFile('td', a.pem).digest);
    expect(parseBundleFile('td', a.pem).digest).not.toBe(parseBundleFile('td', a.pem + b.pem).digest);
  });

  const x5cEntry = (x5c: unknown): object => ({ use: 'x509-svid', kty: 'EC', crv: 'P-256', ...(x5c === undefined ? {} : { x5c }) });
  const b64 = (c: TestCA): string => Buffer.from(c.cert.raw).toString('base64');

  it('x509-svid entry with two x5c values: the first is the authority (Trust Domain and Bundle §4.2.2, X509-SVID §6.2)', () => {
    const bundle = parseBundleFile('td', JSON.stringify({ keys: [x5cEntry([b64(a), b64(b)])] }));
    expect(bundle.x509Authorities.map((c) => c.fingerprint256)).toEqual([a.cert.fingerprint256]);
  });

  it.each([
    ['an empty x5c list', []],
    ['no x5c member', undefined],
  ])('x509-svid entry with %s is ignored, the rest of the bundle kept (§4.2.2)', (_name, x5c) => {
    const bundle = parseBundleFile('td', JSON.stringify({ keys: [x5cEntry(x5c), x5cEntry([b64(b)]), jwt.publicJWK] }));
    expect(bundle.x509Authorities.map((c) => c.fingerprint256)).toEqual([b.cert.fingerprint256]);
    expect([...bundle.jwtAuthorities.keys()]).toEqual(['kid-1']);
  });

  it.each([
    ['truncated DER', 'ERR_SVID_MALFORMED', () => parseDERCertificates(a.cert.raw.subarray(0, 100))],
    [
      'JWT key without kid',
      'ERR_BUNDLE_UNAVAILABLE',
      () => parseJWTBundle('td', JSON.stringify({ keys: [{ ...jwt.publicJWK, kid: undefined }] })),
    ],
    [
      'symmetric JWT key',
      'ERR_BUNDLE_UNAVAILABLE',
      () => parseJWTBundle('td', JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'x' }] })),
    ],
    ['not JSON', 'ERR_BUNDLE_UNAVAILABLE', () => parseBundleFile('td', '{nope')],
    ['PEM without certificates', 'ERR_BUNDLE_UNAVAILABLE', () => parseBundleFile('td', 'hello')],
    [
      'x5c first value holding two certificates',
      'ERR_BUNDLE_UNAVAILABLE',
      () => parseBundleFile('td', JSON.stringify({ keys: [x5cEntry([Buffer.concat([a.cert.raw, b.cert.raw]).toString('base64')])] })),
    ],
    ['x5c that is not a list', 'ERR_BUNDLE_UNAVAILABLE', () => parseBundleFile('td', JSON.stringify({ keys: [x5cEntry('abc')] }))],
  ])('rejects %s with %s', (_name, code, fn) => {
    expect(codeOf(fn)).toBe(code);
  });

  it('static files and federation: one source per trust domain, first source wins', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'a.pem'), a.pem);
    writeFileSync(join(dir, 'b.json'), spiffeBundleJSON([b], [jwt]));
    const files = StaticBundleSource.fromFiles([
      { trustDomain: 'a.org', path: join(dir, 'a.pem') },
      { trustDomain: 'b.org', path: join(dir, 'b.json') },
    ]);
    const override = new StaticBundleSource([parseBundleFile('a.org', b.pem)]);
    const chained = new ChainedBundleSource([override, files]);
    expect(chained.bundleForTrustDomain('a.org')?.x509Authorities[0]?.subject).toBe(b.cert.subject);
    expect(chained.bundleForTrustDomain('b.org')?.jwtAuthorities.has('kid-1')).toBe(true);
    expect(chained.bundleForTrustDomain('c.org')).toBeUndefined();
    expect(codeOf(() => StaticBundleSource.fromFiles([{ trustDomain: 'a.org', path: join(dir, 'missing.pem') }]))).toBe('ERR_CONFIG');
  });
});

describe('PEM trust bundles whose CERTIFICATE blocks are not whole', () => {
  const BEGIN = '-----BEGIN CERTIFICATE-----';
  const message = (text: string): string => {
    try {
      parseBundleFile('example.org', text);
    } catch (err) {
      return `${(err as { code?: string }).code}: ${(err as Error).message}`;
    }
    return 'accepted';
  };

  it('an authority followed by a BEGIN with no END is refused, not read as the one authority', () => {
    expect(message(`${a.pem}${BEGIN}\nMIIB\n`)).toBe(
      'ERR_SVID_MALFORMED: bundle example.org: a BEGIN CERTIFICATE has no END CERTIFICATE before the next block or the end',
    );
  });

  it('a BEGIN whose block holds the next BEGIN is refused', () => {
    expect(message(`${BEGIN}\n${b.pem}${a.pem}`)).toBe(
      'ERR_SVID_MALFORMED: bundle example.org: a BEGIN CERTIFICATE has no END CERTIFICATE before the next block or the end',
    );
  });

  it('1,001 bare BEGIN markers are refused by their count, before any block is looked for', () => {
    expect(message(`${BEGIN}\n`.repeat(1001))).toBe('ERR_SVID_MALFORMED: bundle example.org holds more than 1000 certificates');
  });
});
