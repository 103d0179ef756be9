import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Clock } from '../../src/clock';
import type { RunningVerdict } from '../../src/main';
import { TestOIDCIssuer, unsecuredToken, type IssuerKey } from '../helpers/oidc-issuer';
import { startVerdictFromDocument } from '../helpers/verdict-from-document';
import { createJWTAuthority, mintJWTSVID, spiffeBundleJSON } from '../helpers/svid-authority';
import {
  buildTestBundle,
  checkClient,
  headerValue,
  httpCheckRequest,
  tempDir,
  type CheckClient,
  type CheckResponse,
} from '../helpers/verdict-harness';

/** Allows any request that reached the policy, echoing who acts and for whom (the act chain, outermost first). */
const ECHO_POLICY = `package envoy.authz
import rego.v1
default allow := {"allowed": false}
allow := {"allowed": true, "headers": {
  "x-token-sub": object.get(object.get(input, "token", {}), "sub", ""),
  "x-token-iss": object.get(object.get(input, "token", {}), "iss", ""),
  "x-act": concat(",", [a.sub | some a in object.get(object.get(input, "token", {}), "act", [])]),
  "x-spiffe": object.get(object.get(input, "spiffe", {}), "id", ""),
}}
`;

/** The real clock plus an offset the test moves (injected: expiry and the JWKS refetch cooldown read it). */
function offsetClock(): Clock & { advanceMs(ms: number): void } {
  let offset = 0;
  return {
    nowMs: () => Date.now() + offset,
    monotonicNs: () => process.hrtime.bigint() + BigInt(offset) * 1_000_000n,
    advanceMs: (ms) => void (offset += ms),
  };
}

function reasonOf(res: CheckResponse): string | undefined {
  return headerValue(res.deniedResponse?.headers, 'x-verdict-reason');
}

function bearer(token: string): Record<string, unknown> {
  return httpCheckRequest({ headers: { authorization: `Bearer ${token}` } });
}

describe('OIDC / JWT tokens from a real issuer (discovery + JWKS over HTTP, rotation mid-test)', () => {
  let issuer: TestOIDCIssuer;
  let other: TestOIDCIssuer;
  let verdict: RunningVerdict;
  let client: CheckClient;
  let k1: IssuerKey;
  let k2: IssuerKey;
  const clock = offsetClock();
  const spiffeKey = createJWTAuthority('spiffe-k1');

  beforeAll(async () => {
    issuer = await TestOIDCIssuer.start();
    other = await TestOIDCIssuer.start();
    k1 = await issuer.newKey('k1');
    k2 = await issuer.newKey('k2');
    issuer.publish([k1]);
    other.publish([await other.newKey('k1')]);
    const bundleFile = join(tempDir(), 'spiffe-bundle.json');
    writeFileSync(bundleFile, spiffeBundleJSON([], [await spiffeKey]));
    const policy = await buildTestBundle({ 'authz.rego': ECHO_POLICY });
    verdict = await startVerdictFromDocument(
      {
        policy: { bundle: policy },
        identity: {
          // JWT-SVIDs in the same header, from a SPIFFE trust domain: both kinds of token coexist.
          enabled: true,
          staticBundles: [{ trustDomain: 'example.org', path: bundleFile }],
          jwt: {
            audiences: ['verdict'],
            issuers: [{ issuer: issuer.issuer, audiences: ['verdict'], maxActDepth: 3, clockSkewSeconds: 5 }],
          },
        },
      },
      { clock },
    );
    client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
  });

  afterAll(async () => {
    client?.close();
    await verdict?.stop();
    await issuer?.close();
    await other?.close();
  });

  it('valid: allowed, with the verified claims in input.token', async () => {
    const res = await client.check(bearer(await issuer.sign(k1, { sub: 'alice' })));
    expect(res.status?.code).toBe(0);
    expect(headerValue(res.okResponse?.headers, 'x-token-sub')).toBe('alice');
    expect(headerValue(res.okResponse?.headers, 'x-token-iss')).toBe(issuer.issuer);
    expect(issuer.hits.get('/.well-known/openid-configuration')).toBeGreaterThanOrEqual(1);
  });

  it('act nested three deep: the chain in input.token.act, outermost (current actor) first', async () => {
    const act = { sub: 'agent-1', act: { sub: 'svc-2', act: { sub: 'user-3' } } };
    const res = await client.check(bearer(await issuer.sign(k1, { sub: 'tenant-a', act })));
    expect(headerValue(res.okResponse?.headers, 'x-act')).toBe('agent-1,svc-2,user-3');
  });

  const refused: { name: string; token: () => Promise<string>; code: string }[] = [
    { name: 'expired (beyond the skew)', token: () => issuer.sign(k1, { sub: 'alice' }, { expiresInS: -60 }), code: 'ERR_TOKEN_EXPIRED' },
    { name: 'wrong audience', token: () => issuer.sign(k1, { sub: 'alice' }, { audience: 'someone-else' }), code: 'ERR_TOKEN_AUDIENCE' },
    {
      name: 'alg none',
      token: async () => unsecuredToken({ iss: issuer.issuer, sub: 'alice', aud: 'verdict', exp: 4e9 }, 'k1'),
      code: 'ERR_TOKEN_ALGORITHM',
    },
    {
      name: 'act deeper than maxActDepth',
      token: () => issuer.sign(k1, { sub: 'x', act: { sub: 'a', act: { sub: 'b', act: { sub: 'c', act: { sub: 'd' } } } } }),
      code: 'ERR_TOKEN_ACT_DEPTH',
    },
    {
      name: 'kid not in the JWK Set',
      token: () => issuer.sign({ ...k1, kid: 'made-up' }, { sub: 'alice' }),
      code: 'ERR_TOKEN_KEY_UNKNOWN',
    },
    {
      name: "another issuer's key claiming to be the configured issuer",
      token: async () => other.sign(await other.newKey('k1'), { sub: 'mallory' }, { iss: issuer.issuer }),
      code: 'ERR_TOKEN_SIGNATURE',
    },
  ];
  it.each(refused)('refused: $name → $code (401)', async ({ token, code }) => {
    const res = await client.check(bearer(await token()));
    expect(res.status?.code).not.toBe(0);
    expect(reasonOf(res)).toBe(code);
    expect(res.deniedResponse?.status?.code).toBe(401);
  });

  it('a token from an unconfigured issuer is not an OIDC token: it goes to the JWT-SVID verifier and is refused there', async () => {
    const res = await client.check(bearer(await other.sign(await other.newKey('k9'), { sub: 'mallory' })));
    expect(res.status?.code).not.toBe(0);
    expect(reasonOf(res)).toMatch(/^ERR_(SPIFFE_ID_INVALID|SVID_UNTRUSTED|JWT_)/);
  });

  it('a JWT-SVID in the same header still verifies as a SPIFFE identity (coexistence)', async () => {
    const token = await mintJWTSVID(await spiffeKey, 'spiffe://example.org/ns/default/sa/web', { audience: ['verdict'] });
    const res = await client.check(bearer(token));
    expect(res.status?.code).toBe(0);
    expect(headerValue(res.okResponse?.headers, 'x-spiffe')).toBe('spiffe://example.org/ns/default/sa/web');
    expect(headerValue(res.okResponse?.headers, 'x-token-sub')).toBe('');
  });

  it('key rotation: a token signed by the new key is accepted (refetch); the rotated-away key is then refused', async () => {
    const before = issuer.hits.get('/jwks') ?? 0;
    issuer.publish([k2]);
    clock.advanceMs(31_000); // past the refetch cooldown for unknown kids
    const fresh = await client.check(bearer(await issuer.sign(k2, { sub: 'bob' }, { expiresInS: 600 })));
    expect(headerValue(fresh.okResponse?.headers, 'x-token-sub')).toBe('bob');
    expect(issuer.hits.get('/jwks')).toBe(before + 1);
    clock.advanceMs(300_000); // the set's max age: the next use refetches and sees k1 gone for good
    const old = await client.check(bearer(await issuer.sign(k1, { sub: 'alice' }, { expiresInS: 900 })));
    expect(reasonOf(old)).toBe('ERR_TOKEN_KEY_UNKNOWN');
  });
});

describe('OIDC tokens without JWT-SVID verification', () => {
  it('refuses a token from an unconfigured issuer with ERR_TOKEN_ISSUER', async () => {
    const issuer = await TestOIDCIssuer.start();
    const other = await TestOIDCIssuer.start();
    const key = await other.newKey('k1');
    const verdict = await startVerdictFromDocument({
      policy: { bundle: await buildTestBundle({ 'authz.rego': ECHO_POLICY }) },
      identity: { jwt: { issuers: [{ issuer: issuer.issuer, audiences: ['verdict'] }] } },
    });
    const client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
    try {
      const res = await client.check(bearer(await other.sign(key, { sub: 'mallory' })));
      expect(reasonOf(res)).toBe('ERR_TOKEN_ISSUER');
      const none = await client.check(httpCheckRequest({}));
      expect(none.status?.code).toBe(0); // no token: the policy decides (here: allows, with no input.token)
      expect(headerValue(none.okResponse?.headers, 'x-token-sub')).toBe('');
    } finally {
      client.close();
      await verdict.stop();
      await issuer.close();
      await other.close();
    }
  });
});
