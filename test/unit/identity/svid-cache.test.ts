import { beforeAll, describe, expect, it } from 'vitest';
import type { Clock } from '../../../src/clock';
import { identitySchema } from '../../../src/config/sections/identity';
import type { BundleSource } from '../../../src/identity/bundle-source';
import { fixedIntermediates } from '../../../src/identity/intermediate-source';
import { SPIFFEIdentityStep } from '../../../src/identity/spiffe-identity-step';
import { makeTrustBundle, type TrustBundle } from '../../../src/identity/trust-bundle';
import { signatureCheckCount } from '../../../src/identity/x509-path-builder';
import { pathValidationCount } from '../../../src/identity/x509-svid-verifier';
import type { CheckRequest } from '../../../src/request/check-request';
import { codeOfAsync } from '../../helpers/error-code';
import { createCA, envoyCertificateField, issueX509SVID, type TestCA } from '../../helpers/svid-authority';

/**
 * The identity step's SVID cache, black box: a hit costs no signature check and no path validation (both counted),
 * an entry ends at the earliest notAfter on its path (here the intermediate's, before the leaf's), and at
 * any change of the trust domain's bundle — but not at a re-send of the same authorities.
 */
const ID = 'spiffe://example.org/ns/default/sa/web';
const HOUR = 3_600_000;

/** A bundle source whose bundle the test replaces, as the Workload API client does on an update. */
class SwappableSource implements BundleSource {
  constructor(public bundle: TrustBundle) {}
  bundleForTrustDomain(td: string): TrustBundle | undefined {
    return td === this.bundle.trustDomain ? this.bundle : undefined;
  }
}

class TestClock implements Clock {
  constructor(public now: number) {}
  nowMs(): number {
    return this.now;
  }
  monotonicNs(): bigint {
    return BigInt(this.now) * 1_000_000n;
  }
}

let root: TestCA;
let spare: TestCA;
let shortIntermediate: TestCA;
let request: CheckRequest;

beforeAll(async () => {
  root = await createCA('example.org root');
  spare = await createCA('spare root');
  // The intermediate expires in one hour; the leaf would live a day.
  shortIntermediate = await createCA('short intermediate', { parent: root, notAfter: new Date(Date.now() + HOUR) });
  const leaf = await issueX509SVID(shortIntermediate, ID);
  request = { attributes: { source: { certificate: envoyCertificateField(leaf.pem) } } };
});

function setup(): { step: SPIFFEIdentityStep; source: SwappableSource; clock: TestClock } {
  const config = identitySchema.parse({ enabled: true, staticBundles: [{ trustDomain: 'example.org', path: '/unused' }] });
  const source = new SwappableSource(makeTrustBundle('example.org', [root.cert], new Map()));
  const clock = new TestClock(Date.now());
  // The intermediate comes from a configured pool, as with identity.x509.intermediates.files.
  const step = new SPIFFEIdentityStep({ config, bundles: source, clock, intermediates: fixedIntermediates([shortIntermediate.cert]) });
  return { step, source, clock };
}

describe('SVID cache', () => {
  it('a repeat caller costs no signature check', async () => {
    const { step } = setup();
    const before = signatureCheckCount();
    expect((await step.identify(request))?.id).toBe(ID);
    const afterCold = signatureCheckCount();
    const validations = pathValidationCount();
    expect(afterCold - before).toBeGreaterThan(0); // at least the leaf by the intermediate
    for (let i = 0; i < 5; i++) expect((await step.identify(request))?.id).toBe(ID);
    expect(signatureCheckCount()).toBe(afterCold);
    expect(pathValidationCount()).toBe(validations);
  });

  it('an entry ends at the earliest expiry on its path (the intermediate), not the leaf', async () => {
    const { step, clock } = setup();
    expect((await step.identify(request))?.id).toBe(ID);
    clock.now += HOUR - 60_000;
    expect((await step.identify(request))?.id).toBe(ID);
    clock.now += 2 * 60_000;
    expect(await codeOfAsync(() => step.identify(request))).toBe('ERR_SVID_EXPIRED');
  });

  it('an entry ends when the bundle changes, and survives a re-send of the same authorities', async () => {
    const { step, source } = setup();
    await step.identify(request);
    const warm = pathValidationCount();
    source.bundle = makeTrustBundle('example.org', [root.cert], new Map()); // new object, same digest
    await step.identify(request);
    expect(pathValidationCount()).toBe(warm);
    source.bundle = makeTrustBundle('example.org', [root.cert, spare.cert], new Map()); // rotation adds a root
    expect((await step.identify(request))?.id).toBe(ID);
    expect(pathValidationCount()).toBe(warm + 1);
    source.bundle = makeTrustBundle('example.org', [spare.cert], new Map()); // the old root is gone
    expect(await codeOfAsync(() => step.identify(request))).toBe('ERR_SVID_UNTRUSTED');
  });
});
