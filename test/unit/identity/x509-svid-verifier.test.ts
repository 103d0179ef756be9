import { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { StaticBundleSource } from '../../../src/identity/static-bundle-source';
import { makeTrustBundle } from '../../../src/identity/trust-bundle';
import { verifyX509SVID } from '../../../src/identity/x509-svid-verifier';
import { createCA, issueX509SVID, withBadSignature, type TestCA } from '../../helpers/svid-authority';
import { codeOf } from '../../helpers/error-code';

const ID = 'spiffe://example.org/ns/default/sa/web';
const DAY = 86_400_000;

let root: TestCA;
let otherRoot: TestCA;
let intermediate: TestCA;
let source: StaticBundleSource;

beforeAll(async () => {
  root = await createCA('example.org root');
  otherRoot = await createCA('other.org root');
  intermediate = await createCA('example.org intermediate', { parent: root });
  source = new StaticBundleSource([
    makeTrustBundle('example.org', [root.cert], new Map()),
    makeTrustBundle('other.org', [otherRoot.cert], new Map()),
  ]);
});

describe('verifyX509SVID', () => {
  it('accepts a good SVID issued by the root', async () => {
    const svid = await issueX509SVID(root, ID);
    const out = verifyX509SVID([svid.cert], source, { nowMs: Date.now() });
    expect(out.spiffeID).toEqual({ id: ID, trustDomain: 'example.org', path: '/ns/default/sa/web' });
    expect(out.svidType).toBe('x509');
    expect(out.expiresAtMs).toBe(Date.parse(svid.cert.validTo));
  });

  it('accepts a good SVID through a presented intermediate', async () => {
    const svid = await issueX509SVID(intermediate, ID);
    const out = verifyX509SVID([svid.cert, intermediate.cert], source, { nowMs: Date.now() });
    expect(out.spiffeID.id).toBe(ID);
    expect(out.validUntilMs).toBeLessThanOrEqual(out.expiresAtMs);
  });

  it('verifies with the injected clock, not the wall clock', async () => {
    const svid = await issueX509SVID(root, ID, { notAfter: new Date(Date.now() + 60_000) });
    expect(verifyX509SVID([svid.cert], source, { nowMs: Date.now() }).spiffeID.id).toBe(ID);
    expect(codeOf(() => verifyX509SVID([svid.cert], source, { nowMs: Date.now() + 120_000 }))).toBe('ERR_SVID_EXPIRED');
  });

  const bad: [string, string, () => Promise<X509Certificate[]>][] = [
    [
      'expired',
      'ERR_SVID_EXPIRED',
      async () => [
        (await issueX509SVID(root, ID, { notBefore: new Date(Date.now() - 2 * DAY), notAfter: new Date(Date.now() - DAY) })).cert,
      ],
    ],
    [
      'not yet valid',
      'ERR_SVID_NOT_YET_VALID',
      async () => [
        (await issueX509SVID(root, ID, { notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 2 * DAY) })).cert,
      ],
    ],
    ['two URI SANs', 'ERR_SVID_BAD_SAN', async () => [(await issueX509SVID(root, ID, { uris: [ID, 'spiffe://example.org/other'] })).cert]],
    ['no URI SAN', 'ERR_SVID_BAD_SAN', async () => [(await issueX509SVID(root, ID, { uris: [] })).cert]],
    [
      'URI SAN that is not a SPIFFE ID',
      'ERR_SVID_BAD_SAN',
      async () => [(await issueX509SVID(root, ID, { uris: ['https://example.org/web'] })).cert],
    ],
    ['CA leaf', 'ERR_SVID_BAD_KEY_USAGE', async () => [(await issueX509SVID(root, ID, { ca: true })).cert]],
    ['leaf with keyCertSign', 'ERR_SVID_BAD_KEY_USAGE', async () => [(await issueX509SVID(root, ID, { keyUsage: 1 | 32 })).cert]],
    ['leaf without digitalSignature', 'ERR_SVID_BAD_KEY_USAGE', async () => [(await issueX509SVID(root, ID, { keyUsage: 4 })).cert]],
    ['leaf without key usage', 'ERR_SVID_BAD_KEY_USAGE', async () => [(await issueX509SVID(root, ID, { keyUsage: null })).cert]],
    [
      'wrong trust domain (SAN says example.org, issued by other.org)',
      'ERR_SVID_UNTRUSTED',
      async () => [(await issueX509SVID(otherRoot, ID)).cert],
    ],
    ['unknown trust domain', 'ERR_SVID_UNTRUSTED', async () => [(await issueX509SVID(root, 'spiffe://unknown.org/web')).cert]],
    ['bad signature', 'ERR_SVID_SIGNATURE', async () => [new X509Certificate(withBadSignature((await issueX509SVID(root, ID)).pem))]],
    ['unknown intermediate (not presented)', 'ERR_SVID_UNTRUSTED', async () => [(await issueX509SVID(intermediate, ID)).cert]],
    [
      'intermediate from a foreign root',
      'ERR_SVID_UNTRUSTED',
      async () => {
        const foreign = await createCA('foreign intermediate', { parent: otherRoot });
        return [(await issueX509SVID(foreign, ID)).cert, foreign.cert];
      },
    ],
    [
      'expired intermediate',
      'ERR_SVID_EXPIRED',
      async () => {
        const old = await createCA('old intermediate', {
          parent: root,
          notBefore: new Date(Date.now() - 3 * DAY),
          notAfter: new Date(Date.now() - DAY),
        });
        return [(await issueX509SVID(old, ID, { notBefore: new Date(Date.now() - 2 * DAY) })).cert, old.cert];
      },
    ],
    [
      'intermediate that is not allowed to sign',
      'ERR_SVID_BAD_KEY_USAGE',
      async () => {
        const weak = await createCA('weak intermediate', { parent: root, keyCertSign: false });
        return [(await issueX509SVID(weak, ID)).cert, weak.cert];
      },
    ],
  ];

  it.each(bad)('rejects %s with %s', async (_name, code, make) => {
    const chain = await make();
    expect(codeOf(() => verifyX509SVID(chain, source, { nowMs: Date.now() }))).toBe(code);
  });

  it('rejects an empty chain with ERR_SVID_MALFORMED', () => {
    expect(codeOf(() => verifyX509SVID([], source, { nowMs: Date.now() }))).toBe('ERR_SVID_MALFORMED');
  });
});
