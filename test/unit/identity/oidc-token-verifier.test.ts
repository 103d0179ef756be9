import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { systemClock } from '../../../src/clock';
import { jwtIssuersSchema } from '../../../src/config/sections/jwt-issuers';
import { MAX_TOKEN_JSON_DEPTH } from '../../../src/identity/jws-compact';
import { OIDCTokenStep } from '../../../src/identity/oidc-token-step';
import { OIDCTokenVerifier } from '../../../src/identity/oidc-token-verifier';
import type { CheckRequest } from '../../../src/request/check-request';
import { codeOfAsync } from '../../helpers/error-code';
import { createJWTAuthority, signedJWT, type JWTAuthority } from '../../helpers/svid-authority';
import { tempDir } from '../../helpers/verdict-harness';

/**
 * The OIDC verifier on tokens an attacker or a careless issuer can write: time claims no Date can hold,
 * non-string audiences, deep nesting (signed, and unsigned at the 1 MiB maxTokenBytes bound). Keys from a
 * static JWK Set minted at run time; tokens signed by hand where no JSON encoder writes the claims.
 */
const ISSUER = 'https://issuer.example';
const HEADER = JSON.stringify({ alg: 'ES256', kid: 'k1', typ: 'JWT' });
const MiB = 1024 * 1024;

let key: JWTAuthority;
let verifier: OIDCTokenVerifier;

beforeAll(async () => {
  key = await createJWTAuthority('k1');
  const jwks = join(tempDir('oidc-verifier-'), 'jwks.json');
  writeFileSync(jwks, JSON.stringify({ keys: [{ ...key.publicJWK, use: 'sig', alg: 'ES256' }] }));
  const issuers = jwtIssuersSchema.parse([{ issuer: ISSUER, jwksFile: jwks, audiences: ['verdict'], algorithms: ['ES256'] }]);
  verifier = new OIDCTokenVerifier(issuers, systemClock, MiB);
});

/** Good claims as JSON text, with `member` last (it wins over an earlier member of its name, as JSON.parse reads). */
const claimsWith = (member: string): string =>
  `{"iss":"${ISSUER}","sub":"u1","aud":"verdict","exp":${Math.floor(Date.now() / 1000) + 300},${member}}`;
const nested = (levels: number): string => '['.repeat(levels) + ']'.repeat(levels);
const b64 = (text: string): string => Buffer.from(text).toString('base64url');

describe('OIDC token claims and shape', () => {
  it.each([
    ['good claims', 'no error', HEADER, '"x":0'],
    ['exp 1e300', 'ERR_TOKEN_CLAIMS', HEADER, '"exp":1e300'],
    ['exp 1e400 (Infinity once parsed)', 'ERR_TOKEN_CLAIMS', HEADER, '"exp":1e400'],
    ['nbf -1e400 (-Infinity once parsed)', 'ERR_TOKEN_CLAIMS', HEADER, '"nbf":-1e400'],
    ['iat 2^53+1', 'ERR_TOKEN_CLAIMS', HEADER, '"iat":9007199254740993'],
    ['aud [1, "verdict"]', 'ERR_TOKEN_CLAIMS', HEADER, '"aud":[1,"verdict"]'],
    [`claims nesting ${MAX_TOKEN_JSON_DEPTH} levels (the bound)`, 'no error', HEADER, `"x":${nested(MAX_TOKEN_JSON_DEPTH - 1)}`],
    [`claims nesting ${MAX_TOKEN_JSON_DEPTH + 1} levels`, 'ERR_TOKEN_MALFORMED', HEADER, `"x":${nested(MAX_TOKEN_JSON_DEPTH)}`],
    [
      `header nesting ${MAX_TOKEN_JSON_DEPTH + 1} levels`,
      'ERR_TOKEN_MALFORMED',
      `{"alg":"ES256","kid":"k1","x":${nested(MAX_TOKEN_JSON_DEPTH)}}`,
      '"x":0',
    ],
  ])('signed, %s: %s', async (_name, code, header, member) => {
    expect(await codeOfAsync(verifier.verify(signedJWT(key.privateKey, header, claimsWith(member))))).toBe(code);
  });

  it('a token expiring at the largest Date (8.64e12 s) is accepted, its exp a valid Date', async () => {
    const token = await verifier.verify(signedJWT(key.privateKey, HEADER, claimsWith('"exp":8.64e12')));
    expect(new Date((token?.exp as number) * 1000).toISOString()).toBe('+275760-09-13T00:00:00.000Z');
  });
});

describe('OIDC token step: the unverified parts are bounded and decoded once', () => {
  const step = (jwtSVIDEnabled: boolean): OIDCTokenStep =>
    new OIDCTokenStep(verifier, { header: 'authorization', scheme: 'Bearer', failureStatus: 401, jwtSVIDEnabled });
  const request = (token: string): CheckRequest => ({
    attributes: { request: { http: { headers: { authorization: `Bearer ${token}` } } } },
  });

  /** The JSON.parse calls on `text` while `work` runs, and the code it ends with. */
  async function parsesOf(text: string, work: () => Promise<unknown>): Promise<{ code: string; parses: number }> {
    const parse = vi.spyOn(JSON, 'parse');
    try {
      const code = await codeOfAsync(work);
      return { code, parses: parse.mock.calls.filter(([arg]) => arg === text).length };
    } finally {
      parse.mockRestore();
    }
  }

  it('a token whose signature fails has its claims JSON-parsed once, to choose the issuer', async () => {
    const claims = claimsWith('"x":0');
    const forged = `${b64(HEADER)}.${b64(claims)}.${b64('not the signature')}`;
    expect(await parsesOf(claims, () => step(true).verify(request(forged)))).toEqual({ code: 'ERR_TOKEN_SIGNATURE', parses: 1 });
  });

  it('an unsigned token whose claims nest 390,000 levels (maxTokenBytes 1 MiB) is refused as malformed, its claims never JSON-parsed', async () => {
    const claims = claimsWith(`"x":${nested(390_000)}`);
    const token = `${b64(HEADER)}.${b64(claims)}.AAAA`;
    expect(token.length).toBeLessThanOrEqual(MiB);
    expect(await parsesOf(claims, () => step(false).verify(request(token)))).toEqual({ code: 'ERR_TOKEN_MALFORMED', parses: 0 });
  });
});
