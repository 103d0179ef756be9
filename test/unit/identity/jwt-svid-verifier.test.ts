import { webcrypto } from 'node:crypto';
import { generateKeyPair } from 'jose';

type CryptoKey = webcrypto.CryptoKey;
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { verifyJWTSVID, type JWTSVIDVerifyOptions } from '../../../src/identity/jwt-svid-verifier';
import { StaticBundleSource } from '../../../src/identity/static-bundle-source';
import { parseSPIFFEBundle } from '../../../src/identity/trust-bundle';
import { codeOfAsync } from '../../helpers/error-code';
import { MAX_TOKEN_JSON_DEPTH } from '../../../src/identity/jws-compact';
import {
  createJWTAuthority,
  hmacJWT,
  mintJWTSVID,
  signedJWT,
  spiffeBundleJSON,
  unsecuredJWT,
  type JWTAuthority,
} from '../../helpers/svid-authority';

/** The JWT-SVID table: each named case cites its rule and the code verdict must give ('ok' for controls). */
const ID = 'spiffe://example.org/ns/default/sa/web';
const OPTS = { audiences: ['verdict'] };

let es256: JWTAuthority;
let es384: JWTAuthority;
let ps256: JWTAuthority;
let rs256: JWTAuthority;
let stranger: JWTAuthority;
let p384Key: CryptoKey;
let rsaKey: CryptoKey;
let source: StaticBundleSource;

beforeAll(async () => {
  [es256, es384, ps256, rs256, stranger] = await Promise.all([
    createJWTAuthority('k1'),
    createJWTAuthority('e384', 'ES384'),
    createJWTAuthority('p1', 'PS256'),
    createJWTAuthority('r1', 'RS256'),
    createJWTAuthority('k1'),
  ]);
  p384Key = (await generateKeyPair('ES384')).privateKey as CryptoKey;
  rsaKey = (await generateKeyPair('RS256')).privateKey as CryptoKey;
  source = new StaticBundleSource([
    parseSPIFFEBundle('example.org', spiffeBundleJSON([], [es256, es384, ps256, rs256])),
    parseSPIFFEBundle('other.org', spiffeBundleJSON([], [])),
  ]);
});

interface JWTCase {
  name: string;
  rule: string;
  code: string;
  token: () => Promise<string>;
  options?: Partial<JWTSVIDVerifyOptions>;
}

const tamper = (token: string): string => {
  const [h, p, s] = token.split('.') as [string, string, string];
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
  claims.sub = 'spiffe://example.org/admin';
  return `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
};

const HEADER = JSON.stringify({ alg: 'ES256', kid: 'k1', typ: 'JWT' });
const inFiveMinutes = (): number => Math.floor(Date.now() / 1000) + 300;
/** Good claims as JSON text, the last member written as given (a JSON encoder cannot write 1e400). */
const claimsWith = (member: string): string => `{"sub":"${ID}","aud":"verdict","exp":${inFiveMinutes()},${member}}`;
/** Time claims no Date can hold; a second "exp" member wins over the first (JSON.parse, as jose reads it). */
const BEYOND_THE_LARGEST_DATE: [string, string][] = [
  ['exp 1e300', '"exp":1e300'],
  ['exp 1e400 (Infinity once parsed)', '"exp":1e400'],
  ['exp 2^53+1', '"exp":9007199254740993'],
  ['nbf -1e400 (-Infinity once parsed)', '"nbf":-1e400'],
  ['iat 1e300', '"iat":1e300'],
];
/** `levels` arrays nested, as JSON text. */
const nested = (levels: number): string => '['.repeat(levels) + ']'.repeat(levels);
const b64 = (text: string): string => Buffer.from(text).toString('base64url');

const cases: JWTCase[] = [
  // valid controls
  { name: 'ES256 with the bundle key', rule: 'JWT-SVID §3', code: 'ok', token: () => mintJWTSVID(es256, ID) },
  { name: 'ES384 with a P-384 bundle key', rule: 'JWT-SVID §3', code: 'ok', token: () => mintJWTSVID(es384, ID, { alg: 'ES384' }) },
  { name: 'PS256 with an RSA bundle key', rule: 'JWT-SVID §3', code: 'ok', token: () => mintJWTSVID(ps256, ID, { alg: 'PS256' }) },
  { name: 'RS256 with an RSA bundle key', rule: 'JWT-SVID §3', code: 'ok', token: () => mintJWTSVID(rs256, ID, { alg: 'RS256' }) },
  {
    name: 'aud list holding verdict',
    rule: 'JWT-SVID §3.2',
    code: 'ok',
    token: () => mintJWTSVID(es256, ID, { audience: ['other', 'verdict'] }),
  },
  { name: 'typ JOSE', rule: 'JWT-SVID §2.3', code: 'ok', token: () => mintJWTSVID(es256, ID, { typ: 'JOSE' }) },
  { name: 'no typ', rule: 'JWT-SVID §2.3 (optional)', code: 'ok', token: () => mintJWTSVID(es256, ID, { typ: null }) },
  // algorithm
  { name: 'alg none', rule: 'JWT-SVID §3 (none is not allowed)', code: 'ERR_JWT_ALGORITHM', token: async () => unsecuredJWT(ID) },
  { name: 'HS256 under a known kid', rule: 'JWT-SVID §3 (no HMAC)', code: 'ERR_JWT_ALGORITHM', token: () => hmacJWT(ID, 'k1') },
  {
    name: 'algorithm outside the configured subset',
    rule: 'identity.jwt.algorithms',
    code: 'ERR_JWT_ALGORITHM',
    token: () => mintJWTSVID(ps256, ID, { alg: 'PS256' }),
    options: { algorithms: ['ES256'] },
  },
  {
    name: 'ES384 header, P-256 bundle key',
    rule: 'RFC 7518 §3.4 (alg fits the key)',
    code: 'ERR_JWT_ALGORITHM',
    token: () => mintJWTSVID(es256, ID, { alg: 'ES384', signingKey: p384Key }),
  },
  {
    name: 'ES256 header, P-384 bundle key',
    rule: 'RFC 7518 §3.4',
    code: 'ERR_JWT_ALGORITHM',
    token: () => mintJWTSVID(es384, ID, { alg: 'ES256', signingKey: es256.privateKey }),
  },
  {
    name: 'RS256 header, EC bundle key',
    rule: 'RFC 7518 §3.3',
    code: 'ERR_JWT_ALGORITHM',
    token: () => mintJWTSVID(es256, ID, { alg: 'RS256', signingKey: rsaKey }),
  },
  {
    name: 'ES256 header, RSA bundle key',
    rule: 'RFC 7518 §3.4',
    code: 'ERR_JWT_ALGORITHM',
    token: () => mintJWTSVID(rs256, ID, { alg: 'ES256', signingKey: es256.privateKey }),
  },
  {
    name: 'PS256 header, EC bundle key',
    rule: 'RFC 7518 §3.5',
    code: 'ERR_JWT_ALGORITHM',
    token: () => mintJWTSVID(es256, ID, { alg: 'PS256', signingKey: ps256.privateKey }),
  },
  // key selection and signature
  { name: 'no kid', rule: 'JWT-SVID §2.2', code: 'ERR_JWT_KEY_UNKNOWN', token: () => mintJWTSVID(es256, ID, { kid: null }) },
  { name: 'unknown kid', rule: 'JWT-SVID §2.2', code: 'ERR_JWT_KEY_UNKNOWN', token: () => mintJWTSVID(es256, ID, { kid: 'k9' }) },
  {
    name: 'kid of example.org, sub of other.org',
    rule: 'JWT-SVID §4 (the sub’s trust domain’s bundle)',
    code: 'ERR_JWT_KEY_UNKNOWN',
    token: () => mintJWTSVID(es256, 'spiffe://other.org/web'),
  },
  {
    name: 'signed by a stranger under a known kid',
    rule: 'JWT-SVID §4',
    code: 'ERR_SVID_SIGNATURE',
    token: () => mintJWTSVID(stranger, ID),
  },
  {
    name: 'payload altered after signing',
    rule: 'RFC 7515 §5.2',
    code: 'ERR_SVID_SIGNATURE',
    token: async () => tamper(await mintJWTSVID(es256, ID)),
  },
  // claims
  { name: 'wrong aud', rule: 'JWT-SVID §3.2', code: 'ERR_JWT_AUDIENCE', token: () => mintJWTSVID(es256, ID, { audience: 'someone-else' }) },
  { name: 'no aud', rule: 'JWT-SVID §3.2 (required)', code: 'ERR_JWT_CLAIMS', token: () => mintJWTSVID(es256, ID, { audience: null }) },
  { name: 'no exp', rule: 'JWT-SVID §3.3 (required)', code: 'ERR_JWT_CLAIMS', token: () => mintJWTSVID(es256, ID, { expiresInS: null }) },
  {
    name: 'exp not a number',
    rule: 'RFC 7519 §4.1.4',
    code: 'ERR_JWT_CLAIMS',
    token: () => mintJWTSVID(es256, ID, { expiresInS: null, claims: { exp: 'soon' } }),
  },
  { name: 'expired', rule: 'JWT-SVID §3.3', code: 'ERR_SVID_EXPIRED', token: () => mintJWTSVID(es256, ID, { expiresInS: -600 }) },
  {
    name: 'expired by the injected clock',
    rule: 'JWT-SVID §3.3',
    code: 'ERR_SVID_EXPIRED',
    token: () => mintJWTSVID(es256, ID, { expiresInS: 60 }),
    options: { nowMs: Date.now() + 120_000 },
  },
  {
    name: 'nbf in the future',
    rule: 'RFC 7519 §4.1.5',
    code: 'ERR_SVID_NOT_YET_VALID',
    token: () => mintJWTSVID(es256, ID, { claims: { nbf: Math.floor(Date.now() / 1000) + 3600 } }),
  },
  { name: 'no sub', rule: 'JWT-SVID §3.1 (required)', code: 'ERR_JWT_CLAIMS', token: () => mintJWTSVID(es256, ID, { sub: null }) },
  {
    name: 'sub not a SPIFFE ID',
    rule: 'JWT-SVID §3.1; SPIFFE-ID §2',
    code: 'ERR_SPIFFE_ID_INVALID',
    token: () => mintJWTSVID(es256, ID, { sub: 'web' }),
  },
  {
    name: 'sub with a query',
    rule: 'SPIFFE-ID §2',
    code: 'ERR_SPIFFE_ID_INVALID',
    token: () => mintJWTSVID(es256, ID, { sub: `${ID}?x=1` }),
  },
  {
    name: 'sub is the trust domain’s own ID (no path)',
    rule: 'JWT-SVID §3.1 (the SPIFFE ID of the workload); X509-SVID §3.1',
    code: 'ERR_JWT_CLAIMS',
    token: () => mintJWTSVID(es256, ID, { sub: 'spiffe://example.org' }),
  },
  {
    name: 'aud list holding verdict and a number',
    rule: 'RFC 7519 §4.1.3 (aud values are strings)',
    code: 'ERR_JWT_CLAIMS',
    token: () => mintJWTSVID(es256, ID, { audience: null, claims: { aud: [1, 'verdict'] } }),
  },
  {
    name: 'exp at the largest Date (8.64e12 s)',
    rule: 'RFC 7519 §2 (NumericDate); ECMAScript Date range',
    code: 'ok',
    token: () => mintJWTSVID(es256, ID, { expiresInS: null, claims: { exp: 8.64e12 } }),
  },
  ...BEYOND_THE_LARGEST_DATE.map(([name, member]): JWTCase => ({
    name: `${name}: beyond the largest Date`,
    rule: 'RFC 7519 §2 (NumericDate); ECMAScript Date range',
    code: 'ERR_JWT_CLAIMS',
    token: async () => signedJWT(es256.privateKey, HEADER, claimsWith(member)),
  })),
  {
    name: 'unknown trust domain',
    rule: 'JWT-SVID §4',
    code: 'ERR_SVID_UNTRUSTED',
    token: () => mintJWTSVID(es256, 'spiffe://evil.org/web'),
  },
  // shape
  { name: 'typ at+jwt', rule: 'JWT-SVID §2.3', code: 'ERR_SVID_MALFORMED', token: () => mintJWTSVID(es256, ID, { typ: 'at+jwt' }) },
  {
    name: 'crit header extension',
    rule: 'RFC 7515 §4.1.11',
    code: 'ERR_SVID_MALFORMED',
    token: async () =>
      signedJWT(es256.privateKey, JSON.stringify({ alg: 'ES256', kid: 'k1', crit: ['x-ext'], 'x-ext': 1 }), claimsWith('"x":0')),
  },
  { name: 'garbage', rule: 'RFC 7515 §7.1', code: 'ERR_SVID_MALFORMED', token: async () => 'not.a.jwt' },
  { name: 'five parts (JWE shape)', rule: 'JWT-SVID §2 (JWS compact only)', code: 'ERR_SVID_MALFORMED', token: async () => 'a.b.c.d.e' },
  {
    name: `claims nesting ${MAX_TOKEN_JSON_DEPTH} levels (the bound)`,
    rule: 'bounded input (verdict)',
    code: 'ok',
    token: async () => signedJWT(es256.privateKey, HEADER, claimsWith(`"x":${nested(MAX_TOKEN_JSON_DEPTH - 1)}`)),
  },
  {
    name: `claims nesting ${MAX_TOKEN_JSON_DEPTH + 1} levels`,
    rule: 'bounded input (verdict)',
    code: 'ERR_SVID_MALFORMED',
    token: async () => signedJWT(es256.privateKey, HEADER, claimsWith(`"x":${nested(MAX_TOKEN_JSON_DEPTH)}`)),
  },
  {
    name: `header nesting ${MAX_TOKEN_JSON_DEPTH + 1} levels`,
    rule: 'bounded input (verdict)',
    code: 'ERR_SVID_MALFORMED',
    token: async () => signedJWT(es256.privateKey, `{"alg":"ES256","kid":"k1","x":${nested(MAX_TOKEN_JSON_DEPTH)}}`, claimsWith('"x":0')),
  },
  {
    name: 'oversize',
    rule: 'bounded input (identity.jwt.maxTokenBytes)',
    code: 'ERR_SVID_MALFORMED',
    token: async () => 'a'.repeat(20_000),
  },
];

describe('JWT-SVID table', () => {
  it('has at least 25 named cases, valid controls among them', () => {
    expect(cases.length).toBeGreaterThanOrEqual(25);
    expect(cases.filter((c) => c.code === 'ok').length).toBeGreaterThanOrEqual(5);
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const token = await c.token();
    const got = await codeOfAsync(verifyJWTSVID(token, source, { ...OPTS, nowMs: Date.now(), ...c.options }));
    expect(got, `${c.name} (${c.rule})`).toBe(c.code === 'ok' ? 'no error' : c.code);
  });

  it.each([
    ['payload', (deep: string) => `${b64(HEADER)}.${b64(deep)}.AAAA`],
    ['header', (deep: string) => `${b64(deep)}.${b64(claimsWith('"x":0'))}.AAAA`],
  ])(
    'an unsigned token whose %s nests 390,000 levels (maxTokenBytes 1 MiB) is refused as malformed, that part never JSON-parsed',
    async (_part, token) => {
      const deep = `{"x":${nested(390_000)}}`;
      const parse = vi.spyOn(JSON, 'parse');
      try {
        const got = await codeOfAsync(verifyJWTSVID(token(deep), source, { ...OPTS, nowMs: Date.now(), maxTokenBytes: 1024 * 1024 }));
        expect(got).toBe('ERR_SVID_MALFORMED');
        expect(parse.mock.calls.filter(([text]) => text === deep)).toHaveLength(0);
      } finally {
        parse.mockRestore();
      }
    },
  );

  it('returns the verified identity and its expiry', async () => {
    const token = await mintJWTSVID(es256, ID, { expiresInS: 120 });
    const out = await verifyJWTSVID(token, source, { ...OPTS, nowMs: Date.now() });
    expect(out.spiffeID).toEqual({ id: ID, trustDomain: 'example.org', path: '/ns/default/sa/web' });
    expect(out.svidType).toBe('jwt');
    expect(out.expiresAtMs).toBe(JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()).exp * 1000);
  });
});
