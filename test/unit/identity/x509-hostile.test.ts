import type { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { MAX_NAME_CONSTRAINT_SUBTREES, MAX_NAMES_PER_CERTIFICATE } from '../../../src/identity/der-extensions';
import { StaticBundleSource } from '../../../src/identity/static-bundle-source';
import { makeTrustBundle } from '../../../src/identity/trust-bundle';
import { nameConstraintCheckCount } from '../../../src/identity/x509-path-builder';
import { verifyX509SVID } from '../../../src/identity/x509-svid-verifier';
import { codeOf } from '../../helpers/error-code';
import { createCA, issueX509SVID, type TestCA } from '../../helpers/svid-authority';

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
