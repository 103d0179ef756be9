import { beforeAll, describe, expect, it } from 'vitest';
import { verifyJWTSVID } from '../../../src/identity/jwt-svid-verifier';
import { StaticBundleSource } from '../../../src/identity/static-bundle-source';
import { parseSPIFFEBundle } from '../../../src/identity/trust-bundle';
import { createJWTAuthority, hmacJWT, mintJWTSVID, spiffeBundleJSON, unsecuredJWT, type JWTAuthority } from '../../helpers/svid-authority';
import { codeOfAsync } from '../../helpers/error-code';

const ID = 'spiffe://example.org/ns/default/sa/web';
const OPTS = { audiences: ['verdict'] };

let authority: JWTAuthority;
let rsaAuthority: JWTAuthority;
let stranger: JWTAuthority;
let source: StaticBundleSource;

beforeAll(async () => {
  authority = await createJWTAuthority('k1');
  rsaAuthority = await createJWTAuthority('r1', 'PS256');
  stranger = await createJWTAuthority('k1');
  source = new StaticBundleSource([parseSPIFFEBundle('example.org', spiffeBundleJSON([], [authority, rsaAuthority]))]);
});

describe('verifyJWTSVID', () => {
  it('accepts a good ES256 JWT-SVID', async () => {
    const token = await mintJWTSVID(authority, ID, { audience: ['other', 'verdict'] });
    const out = await verifyJWTSVID(token, source, { ...OPTS, nowMs: Date.now() });
    expect(out.spiffeID).toEqual({ id: ID, trustDomain: 'example.org', path: '/ns/default/sa/web' });
    expect(out.svidType).toBe('jwt');
    expect(out.expiresAtMs).toBeGreaterThan(Date.now());
  });

  it('accepts a good PS256 JWT-SVID', async () => {
    const token = await mintJWTSVID(rsaAuthority, ID, { alg: 'PS256' });
    expect((await verifyJWTSVID(token, source, { ...OPTS, nowMs: Date.now() })).spiffeID.id).toBe(ID);
  });

  it('uses the injected clock for exp', async () => {
    const token = await mintJWTSVID(authority, ID, { expiresInS: 60 });
    expect(await codeOfAsync(verifyJWTSVID(token, source, { ...OPTS, nowMs: Date.now() + 120_000 }))).toBe('ERR_SVID_EXPIRED');
  });

  const cases: [string, string, () => Promise<string>][] = [
    ['alg none', 'ERR_JWT_ALGORITHM', async () => unsecuredJWT(ID)],
    ['HS256 with a known kid', 'ERR_JWT_ALGORITHM', () => hmacJWT(ID, 'k1')],
    ['wrong aud', 'ERR_JWT_AUDIENCE', () => mintJWTSVID(authority, ID, { audience: 'someone-else' })],
    ['missing exp', 'ERR_JWT_CLAIMS', () => mintJWTSVID(authority, ID, { expiresInS: null })],
    ['expired', 'ERR_SVID_EXPIRED', () => mintJWTSVID(authority, ID, { expiresInS: -600 })],
    ['unknown kid', 'ERR_JWT_KEY_UNKNOWN', () => mintJWTSVID(authority, ID, { kid: 'k9' })],
    ['signed by a stranger under a known kid', 'ERR_SVID_SIGNATURE', () => mintJWTSVID(stranger, ID)],
    ['sub not a SPIFFE ID', 'ERR_SPIFFE_ID_INVALID', () => mintJWTSVID(authority, ID, { sub: 'web' })],
    ['untrusted trust domain', 'ERR_SVID_UNTRUSTED', () => mintJWTSVID(authority, 'spiffe://evil.org/web')],
    ['garbage', 'ERR_SVID_MALFORMED', async () => 'not.a.jwt'],
    ['oversize', 'ERR_SVID_MALFORMED', async () => 'a'.repeat(20_000)],
  ];

  it.each(cases)('rejects %s with %s', async (_name, code, make) => {
    expect(await codeOfAsync(verifyJWTSVID(await make(), source, { ...OPTS, nowMs: Date.now() }))).toBe(code);
  });

  it('refuses an algorithm outside the configured subset', async () => {
    const token = await mintJWTSVID(rsaAuthority, ID, { alg: 'PS256' });
    expect(await codeOfAsync(verifyJWTSVID(token, source, { ...OPTS, algorithms: ['ES256'], nowMs: Date.now() }))).toBe(
      'ERR_JWT_ALGORITHM',
    );
  });
});
