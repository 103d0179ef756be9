import { beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/clock';
import { identitySchema } from '../../../src/config/sections/identity';
import { ownSVIDIntermediates } from '../../../src/identity/intermediate-source';
import { SPIFFEIdentityStep } from '../../../src/identity/spiffe-identity-step';
import { StaticBundleSource } from '../../../src/identity/static-bundle-source';
import { makeTrustBundle } from '../../../src/identity/trust-bundle';
import { verifyCallerChain } from '../../../src/identity/verify-caller-chain';
import { chainFromXFCC } from '../../../src/identity/xfcc-chain';
import type { CheckRequest } from '../../../src/request/check-request';
import { codeOf, codeOfAsync } from '../../helpers/error-code';
import { createCA, envoyCertificateField, issueX509SVID, type TestCA, type TestSVID } from '../../helpers/svid-authority';

/**
 * Intermediates for callers whose SVID is issued by an intermediate not in the bundle (SPIRE behind an
 * UpstreamAuthority): Envoy forwards only the leaf, so candidates come from verdict's own SVID chain, the
 * XFCC `Chain=` element (only when declared sanitized), or a file; and the one function a transport calls
 * with the chain a TLS peer presented.
 */
const ID = 'spiffe://example.org/ns/default/sa/web';
const OWN = 'spiffe://example.org/verdict';

let root: TestCA;
let upstream: TestCA;
let foreign: TestCA;
let caller: TestSVID;
let foreignCaller: TestSVID;
let ownLeaf: TestSVID;
let source: StaticBundleSource;

beforeAll(async () => {
  root = await createCA('upstream root');
  upstream = await createCA('spire intermediate', { parent: root, uris: ['spiffe://example.org'] });
  foreign = await createCA('spire intermediate', { parent: await createCA('upstream root') });
  caller = await issueX509SVID(upstream, ID);
  foreignCaller = await issueX509SVID(foreign, ID);
  ownLeaf = await issueX509SVID(upstream, OWN);
  source = new StaticBundleSource([makeTrustBundle('example.org', [root.cert], new Map())]);
});

const xfccOf = (...pems: string[]): string =>
  `By=spiffe://example.org/verdict;Hash=ab12;Chain=${encodeURIComponent(pems.join(''))};Subject="O=SPIRE,C=US";URI=${ID}`;

function step(opts: { trustXFCCChain?: boolean; own?: boolean } = {}): SPIFFEIdentityStep {
  const config = identitySchema.parse({
    enabled: true,
    staticBundles: [{ trustDomain: 'example.org', path: '/unused' }],
    x509: { intermediates: { trustXFCCChain: opts.trustXFCCChain ?? false } },
  });
  const holder = { currentX509SVID: { spiffeID: OWN, certificates: [ownLeaf.cert, upstream.cert] } };
  return new SPIFFEIdentityStep({
    config,
    bundles: source,
    clock: systemClock,
    ...(opts.own ? { intermediates: ownSVIDIntermediates(holder) } : {}),
  });
}

function request(leaf: TestSVID, xfcc?: string): CheckRequest {
  return {
    attributes: {
      source: { certificate: envoyCertificateField(leaf.pem) },
      request: { http: { headers: xfcc === undefined ? {} : { 'x-forwarded-client-cert': xfcc } } },
    },
  };
}

describe('intermediates for ext_authz callers', () => {
  it('without candidates, a leaf under an intermediate is refused', async () => {
    expect(await codeOfAsync(() => step().identify(request(caller)))).toBe('ERR_SVID_UNTRUSTED');
  });

  it("(a) verdict's own SVID chain from the Workload API supplies the intermediate", async () => {
    expect((await step({ own: true }).identify(request(caller)))?.id).toBe(ID);
    // A caller under a foreign intermediate of the same name still fails: the candidate's key does not fit.
    expect(await codeOfAsync(() => step({ own: true }).identify(request(foreignCaller)))).toBe('ERR_SVID_SIGNATURE');
  });

  it('(a) only for callers of its own trust domain', () => {
    const holder = { currentX509SVID: { spiffeID: OWN, certificates: [ownLeaf.cert, upstream.cert] } };
    expect(ownSVIDIntermediates(holder).intermediatesFor('example.org')).toHaveLength(1);
    expect(ownSVIDIntermediates(holder).intermediatesFor('other.org')).toHaveLength(0);
    expect(ownSVIDIntermediates({ currentX509SVID: null }).intermediatesFor('example.org')).toHaveLength(0);
  });

  it('(b) XFCC Chain= is read only when the operator declares Envoy sanitizes and sets it', async () => {
    const xfcc = xfccOf(caller.pem, upstream.pem);
    expect(await codeOfAsync(() => step().identify(request(caller, xfcc)))).toBe('ERR_SVID_UNTRUSTED');
    expect((await step({ trustXFCCChain: true }).identify(request(caller, xfcc)))?.id).toBe(ID);
  });

  it('(b) an intermediate forwarded in XFCC must itself chain to the bundle', async () => {
    const xfcc = xfccOf(foreignCaller.pem, foreign.pem);
    // The foreign intermediate names the real root as issuer, but the root's key did not sign it.
    expect(await codeOfAsync(() => step({ trustXFCCChain: true }).identify(request(foreignCaller, xfcc)))).toBe('ERR_SVID_SIGNATURE');
  });

  it.each([
    ['two elements (not what SANITIZE_SET sends)', () => `${xfccOf(upstream.pem)},${xfccOf(upstream.pem)}`, 'ERR_SVID_MALFORMED'],
    ['an unterminated quote', () => 'Chain="abc', 'ERR_SVID_MALFORMED'],
    ['a Chain that is not URL-encoded PEM', () => 'Chain=%E0%A4%A', 'ERR_SVID_MALFORMED'],
    ['an oversized header', () => `Chain=${'a'.repeat(70_000)}`, 'ERR_SVID_MALFORMED'],
  ])('(b) XFCC with %s is refused', (_name, header, code) => {
    expect(codeOf(() => chainFromXFCC(header()))).toBe(code);
  });

  it('(b) XFCC parsing: quoted values with separators; no Chain gives no candidates', () => {
    const header = `Hash=1;Subject="CN=a,O=b;c";Chain="${encodeURIComponent(upstream.pem)}"`;
    expect(chainFromXFCC(header).map((c) => c.fingerprint256)).toEqual([upstream.cert.fingerprint256]);
    expect(chainFromXFCC('Hash=1;URI=spiffe://example.org/x')).toEqual([]);
    expect(chainFromXFCC(undefined)).toEqual([]);
  });
});

describe('verifyCallerChain (one call per TLS connection)', () => {
  const opts = { bundles: {} as StaticBundleSource, allowedCallers: ['spiffe://example.org/ns/default/*'], nowMs: 0 };
  beforeAll(() => {
    opts.bundles = source;
    opts.nowMs = Date.now();
  });

  it('verifies leaf + intermediates given as DER and returns the earliest expiry on the path', () => {
    const svid = verifyCallerChain([caller.cert.raw, upstream.cert.raw], opts);
    expect(svid.spiffeID.id).toBe(ID);
    expect(svid.validUntilMs).toBe(
      Math.min(Date.parse(caller.cert.validTo), Date.parse(upstream.cert.validTo), Date.parse(root.cert.validTo)),
    );
  });

  it.each([
    ['a caller outside allowedCallers', () => [ownLeaf.cert, upstream.cert], 'ERR_SVID_UNTRUSTED'],
    ['the leaf alone (intermediate not presented)', () => [caller.cert], 'ERR_SVID_UNTRUSTED'],
    ['a chain through a foreign intermediate', () => [foreignCaller.cert, foreign.cert], 'ERR_SVID_SIGNATURE'],
    ['no certificate', () => [], 'ERR_SVID_UNTRUSTED'],
    ['bytes that are not a certificate', () => [Buffer.from('nope')], 'ERR_SVID_MALFORMED'],
  ])('refuses %s', (_name, chain, code) => {
    expect(codeOf(() => verifyCallerChain(chain(), opts))).toBe(code);
  });
});
