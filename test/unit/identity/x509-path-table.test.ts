import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { MAX_NAME_CONSTRAINT_SUBTREES as MAX_SUBTREES, MAX_NAMES_PER_CERTIFICATE as MAX_NAMES } from '../../../src/identity/der-extensions';
import { fixedIntermediates } from '../../../src/identity/intermediate-source';
import { StaticBundleSource } from '../../../src/identity/static-bundle-source';
import { makeTrustBundle } from '../../../src/identity/trust-bundle';
import { verifyX509SVID } from '../../../src/identity/x509-svid-verifier';
import { codeOf } from '../../helpers/error-code';
import { createCA, issueX509SVID, withBadSignature, type CAOptions, type LeafOptions, type TestCA } from '../../helpers/svid-authority';
import { tempDir } from '../../helpers/verdict-harness';

/**
 * The X.509-SVID verdict table: each named case cites the rule it checks and the code verdict must give,
 * and is cross-checked against `openssl verify -x509_strict` on the same certificates (CAfile = the bundle
 * of the trust domain verdict would use, -untrusted = the intermediates, -partial_chain when the anchor is
 * not self-signed). `openssl` says what OpenSSL answers; where that differs from verdict, `differs` says
 * why (a SPIFFE rule OpenSSL does not know, or an RFC 5280 strictness SPIFFE does not ask for).
 */
const ID = 'spiffe://example.org/ns/default/sa/web';
const OTHER_ID = 'spiffe://other.org/ns/default/sa/web';
const DAY = 86_400_000;
const KU = { digitalSignature: 1, keyEncipherment: 4, keyAgreement: 16, keyCertSign: 32, cRLSign: 64 } as const;

interface Built {
  /** Leaf first, then what the caller presents. */
  chain: X509Certificate[];
  /** Path-building candidates not presented (verdict's own chain, XFCC, a file). */
  extra?: X509Certificate[];
  /** X.509 authorities per trust domain (default: example.org → root, other.org → otherRoot). */
  bundles?: Record<string, X509Certificate[]>;
  maxPathLength?: number;
  maxCandidates?: number;
  /** The trust domain whose bundle openssl gets as CAfile (default example.org). */
  trustDomain?: string;
}

interface Case {
  name: string;
  rule: string;
  code: string;
  openssl: 'ok' | 'fail' | 'n/a';
  differs?: string;
  make: () => Promise<Built>;
}

let root: TestCA;
let otherRoot: TestCA;
let int1: TestCA;
let int2: TestCA;
let dir: string;

beforeAll(async () => {
  root = await createCA('example.org root');
  otherRoot = await createCA('other.org root');
  int1 = await createCA('example.org intermediate 1', { parent: root, uris: ['spiffe://example.org'] });
  int2 = await createCA('example.org intermediate 2', { parent: int1, uris: ['spiffe://example.org'] });
  dir = tempDir('x509-table-');
});

const leaf = async (issuer: TestCA, opts: LeafOptions = {}, id = ID): Promise<X509Certificate> =>
  (await issueX509SVID(issuer, id, opts)).cert;
const ca = (name: string, opts: CAOptions): Promise<TestCA> => createCA(name, opts);
const viaRoot = async (caOpts: CAOptions, leafOpts: LeafOptions = {}): Promise<Built> => {
  const r = await ca('constrained root', caOpts);
  return { chain: [await leaf(r, leafOpts)], bundles: { 'example.org': [r.cert] } };
};
const viaIntermediate = async (caOpts: CAOptions, leafOpts: LeafOptions = {}, id = ID): Promise<Built> => {
  const i = await ca('constrained intermediate', { parent: root, ...caOpts });
  return { chain: [await leaf(i, leafOpts, id), i.cert] };
};
const dnsNames = (n: number): string[] => Array.from({ length: n }, (_, i) => `n${i}.example.org`);
const trustDomains = (n: number): string[] => Array.from({ length: n }, (_, i) => `td${i}.example.net`);
/** `ca` with its subject Name but another key: what it signs names `ca` as issuer and does not verify with its key. */
const impostorOf = async (of: TestCA): Promise<TestCA> => ({ ...of, keys: (await ca('impostor', {})).keys });
const past = { notBefore: new Date(Date.now() - 3 * DAY), notAfter: new Date(Date.now() - DAY) };
const future = { notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 2 * DAY) };

const cases: Case[] = [
  // --- valid controls: the table fails if verdict refuses good paths ---
  { name: 'leaf signed by the root', rule: 'X509-SVID §5.1', code: 'ok', openssl: 'ok', make: async () => ({ chain: [await leaf(root)] }) },
  {
    name: 'leaf via one intermediate',
    rule: 'RFC 5280 §6.1',
    code: 'ok',
    openssl: 'ok',
    make: async () => ({ chain: [await leaf(int1), int1.cert] }),
  },
  {
    name: 'leaf via two intermediates',
    rule: 'RFC 5280 §6.1',
    code: 'ok',
    openssl: 'ok',
    make: async () => ({ chain: [await leaf(int2), int2.cert, int1.cert] }),
  },
  {
    name: 'intermediates presented out of order',
    rule: 'RFC 5280 §6.1 (path building, RFC 4158)',
    code: 'ok',
    openssl: 'ok',
    make: async () => ({ chain: [await leaf(int2), int1.cert, int2.cert] }),
  },
  {
    name: 'intermediate presented twice and the root presented too',
    rule: 'RFC 5280 §6.1',
    code: 'ok',
    openssl: 'ok',
    make: async () => ({ chain: [await leaf(int1), int1.cert, int1.cert, root.cert] }),
  },
  {
    name: 'intermediate from the extra pool (not presented)',
    rule: 'RFC 5280 §6.1; X509-SVID §5.1',
    code: 'ok',
    openssl: 'ok',
    make: async () => ({ chain: [await leaf(int2)], extra: [int2.cert, int1.cert] }),
  },
  {
    name: 'rotated roots of one name, leaf with AKI, signed by the second',
    rule: 'RFC 5280 §4.2.1.1 (AKI orders candidates)',
    code: 'ok',
    openssl: 'ok',
    make: async () => {
      const [old, rotated] = [await ca('rotating root', {}), await ca('rotating root', {})];
      return { chain: [await leaf(rotated)], bundles: { 'example.org': [old.cert, rotated.cert] } };
    },
  },
  {
    name: 'rotated roots of one name, leaf without AKI, signed by the second',
    rule: 'RFC 5280 §6.1 (every candidate issuer is tried)',
    code: 'ok',
    openssl: 'fail',
    differs: 'openssl -x509_strict requires an AKI on every non-root certificate (RFC 5280 §4.2.1.1 MUST for CAs); SPIFFE does not',
    make: async () => {
      const [old, rotated] = [await ca('rotating root', {}), await ca('rotating root', {})];
      return { chain: [await leaf(rotated, { withAKI: false })], bundles: { 'example.org': [old.cert, rotated.cert] } };
    },
  },
  {
    name: 'rotated roots of one name, leaf without AKI, signed by the first',
    rule: 'RFC 5280 §6.1',
    code: 'ok',
    openssl: 'fail',
    differs: 'openssl -x509_strict requires an AKI on non-root certificates',
    make: async () => {
      const [old, rotated] = [await ca('rotating root', {}), await ca('rotating root', {})];
      return { chain: [await leaf(old, { withAKI: false })], bundles: { 'example.org': [old.cert, rotated.cert] } };
    },
  },
  {
    name: 'leaf whose AKI names another key (mismatch tried last)',
    rule: 'RFC 5280 §4.2.1.1 (AKI is a hint; Go tries mismatches last)',
    code: 'ok',
    openssl: 'fail',
    differs: 'OpenSSL drops an issuer whose SKI differs from the AKI; verdict, like Go, still tries it',
    make: async () => {
      const stranger = await ca('stranger', {});
      // Signed by root's key, AKI computed from the stranger's key.
      const svid = await issueX509SVID({ ...root, keys: { privateKey: root.keys.privateKey, publicKey: stranger.keys.publicKey } }, ID);
      return { chain: [svid.cert] };
    },
  },
  {
    name: 'anchor is an intermediate (bundle without the root)',
    rule: 'X509-SVID §5.1 (any bundle authority is an anchor)',
    code: 'ok',
    openssl: 'ok',
    make: async () => ({ chain: [await leaf(int1)], bundles: { 'example.org': [int1.cert] } }),
  },
  {
    name: 'pathLen 0 on the intermediate that signs the leaf',
    rule: 'RFC 5280 §4.2.1.9',
    code: 'ok',
    openssl: 'ok',
    make: () => viaIntermediate({ pathLen: 0 }),
  },
  {
    name: 'pathLen 1 on the root, one intermediate',
    rule: 'RFC 5280 §4.2.1.9',
    code: 'ok',
    openssl: 'ok',
    make: async () => {
      const r = await ca('pathlen-1 root', { pathLen: 1 });
      const i = await ca('under pathlen-1', { parent: r });
      return { chain: [await leaf(i), i.cert], bundles: { 'example.org': [r.cert] } };
    },
  },
  {
    name: 'root name-constrained to the trust domain, leaf in it',
    rule: 'RFC 5280 §4.2.1.10 (URI)',
    code: 'ok',
    openssl: 'ok',
    make: () => viaRoot({ nameConstraints: { permittedURIs: ['example.org'] } }),
  },
  {
    name: 'intermediate excluding another trust domain, leaf outside it',
    rule: 'RFC 5280 §4.2.1.10 (URI, excluded)',
    code: 'ok',
    openssl: 'ok',
    make: () => viaIntermediate({ nameConstraints: { excludedURIs: ['other.org'] } }),
  },
  {
    name: 'DNS SAN inside a permitted dNSName subtree',
    rule: 'RFC 5280 §4.2.1.10 (dNSName)',
    code: 'ok',
    openssl: 'ok',
    make: () =>
      viaIntermediate(
        { nameConstraints: { permittedURIs: ['example.org'], permittedDNS: ['example.org'] } },
        { dnsNames: ['web.example.org'] },
      ),
  },
  {
    name: 'URI constraint in capitals, leaf of the lowercase trust domain',
    rule: 'RFC 5280 §4.2.1.10 (hosts compare case-insensitively)',
    code: 'ok',
    openssl: 'ok',
    make: () => viaIntermediate({ nameConstraints: { permittedURIs: ['EXAMPLE.ORG'] } }),
  },
  {
    name: `leaf with ${MAX_NAMES} names (the cap): its URI SAN and ${MAX_NAMES - 1} DNS names`,
    rule: 'bounded input (verdict); X509-SVID §2 (other SANs allowed)',
    code: 'ok',
    openssl: 'ok',
    make: async () => ({ chain: [await leaf(root, { dnsNames: dnsNames(MAX_NAMES - 1) })] }),
  },
  {
    name: `intermediate with ${MAX_SUBTREES} permitted subtrees (the cap), leaf inside one`,
    rule: 'bounded input (verdict); RFC 5280 §4.2.1.10',
    code: 'ok',
    openssl: 'ok',
    make: () => viaIntermediate({ nameConstraints: { permittedURIs: [...trustDomains(MAX_SUBTREES - 1), 'example.org'] } }),
  },
  // --- basic constraints, path length ---
  {
    name: 'pathLen 0 on an intermediate with one intermediate below',
    rule: 'RFC 5280 §4.2.1.9, §6.1.4 (l)',
    code: 'ERR_SVID_PATH_LENGTH',
    openssl: 'fail',
    make: async () => {
      const top = await ca('pathlen-0 intermediate', { parent: root, pathLen: 0 });
      const low = await ca('below pathlen-0', { parent: top });
      return { chain: [await leaf(low), low.cert, top.cert] };
    },
  },
  {
    name: 'pathLen 0 on the root with one intermediate',
    rule: 'RFC 5280 §4.2.1.9 (trust anchor constraints, RFC 5937)',
    code: 'ERR_SVID_PATH_LENGTH',
    openssl: 'fail',
    make: async () => {
      const r = await ca('pathlen-0 root', { pathLen: 0 });
      const i = await ca('under pathlen-0 root', { parent: r });
      return { chain: [await leaf(i), i.cert], bundles: { 'example.org': [r.cert] } };
    },
  },
  {
    name: 'pathLen 1 on the root with two intermediates',
    rule: 'RFC 5280 §4.2.1.9',
    code: 'ERR_SVID_PATH_LENGTH',
    openssl: 'fail',
    make: async () => {
      const r = await ca('pathlen-1 root', { pathLen: 1 });
      const a = await ca('pathlen a', { parent: r });
      const b = await ca('pathlen b', { parent: a });
      return { chain: [await leaf(b), b.cert, a.cert], bundles: { 'example.org': [r.cert] } };
    },
  },
  {
    name: 'intermediate without basicConstraints cA',
    rule: 'RFC 5280 §6.1.4 (k); X509-SVID §4.1',
    code: 'ERR_SVID_BAD_KEY_USAGE',
    openssl: 'fail',
    make: () => viaIntermediate({ ca: false }),
  },
  {
    name: 'root without basicConstraints cA',
    rule: 'RFC 5280 §6.1.4 (k); X509-SVID §4.1',
    code: 'ERR_SVID_BAD_KEY_USAGE',
    openssl: 'fail',
    make: () => viaRoot({ ca: false }),
  },
  // --- key usage ---
  {
    name: 'intermediate key usage without keyCertSign',
    rule: 'RFC 5280 §6.1.4 (n); X509-SVID §4.3',
    code: 'ERR_SVID_BAD_KEY_USAGE',
    openssl: 'fail',
    make: () => viaIntermediate({ keyCertSign: false }),
  },
  {
    name: 'intermediate without a key usage extension',
    rule: 'X509-SVID §4.3 (signing certificates set keyCertSign)',
    code: 'ERR_SVID_BAD_KEY_USAGE',
    openssl: 'fail',
    make: () => viaIntermediate({ keyUsage: null }),
  },
  {
    name: 'root key usage without keyCertSign',
    rule: 'X509-SVID §4.3',
    code: 'ERR_SVID_BAD_KEY_USAGE',
    openssl: 'fail',
    make: () => viaRoot({ keyUsage: KU.cRLSign | KU.digitalSignature }),
  },
  {
    name: 'leaf with the CA flag',
    rule: 'X509-SVID §4.1',
    code: 'ERR_SVID_BAD_KEY_USAGE',
    openssl: 'ok',
    differs: 'OpenSSL accepts a CA certificate as the end entity',
    make: async () => ({ chain: [await leaf(root, { ca: true })] }),
  },
  {
    name: 'leaf with keyCertSign',
    rule: 'X509-SVID §4.3',
    code: 'ERR_SVID_BAD_KEY_USAGE',
    openssl: 'fail',
    make: async () => ({ chain: [await leaf(root, { keyUsage: KU.digitalSignature | KU.keyCertSign })] }),
  },
  {
    name: 'leaf with cRLSign',
    rule: 'X509-SVID §4.3',
    code: 'ERR_SVID_BAD_KEY_USAGE',
    openssl: 'ok',
    differs: 'SPIFFE rule: OpenSSL does not look at an end entity’s cRLSign',
    make: async () => ({ chain: [await leaf(root, { keyUsage: KU.digitalSignature | KU.cRLSign })] }),
  },
  {
    name: 'leaf without digitalSignature',
    rule: 'X509-SVID §4.3',
    code: 'ERR_SVID_BAD_KEY_USAGE',
    openssl: 'ok',
    differs: 'SPIFFE rule: OpenSSL checks end-entity key usage only for a -purpose',
    make: async () => ({ chain: [await leaf(root, { keyUsage: KU.keyEncipherment })] }),
  },
  {
    name: 'leaf without a key usage extension',
    rule: 'X509-SVID §4.3',
    code: 'ERR_SVID_BAD_KEY_USAGE',
    openssl: 'ok',
    differs: 'SPIFFE rule (leaf MUST set digitalSignature)',
    make: async () => ({ chain: [await leaf(root, { keyUsage: null })] }),
  },
  // --- name constraints ---
  {
    name: 'root constrained to another trust domain',
    rule: 'RFC 5280 §4.2.1.10 (URI)',
    code: 'ERR_SVID_NAME_CONSTRAINT',
    openssl: 'fail',
    make: () => viaRoot({ nameConstraints: { permittedURIs: ['other.org'] } }),
  },
  {
    name: 'CA constrained to one trust domain signs a leaf of another (shared root)',
    rule: 'RFC 5280 §4.2.1.10 (URI)',
    code: 'ERR_SVID_NAME_CONSTRAINT',
    openssl: 'fail',
    make: async () => ({
      ...(await viaIntermediate({ nameConstraints: { permittedURIs: ['example.org'] } }, {}, OTHER_ID)),
      bundles: { 'example.org': [root.cert], 'other.org': [root.cert] },
      trustDomain: 'other.org',
    }),
  },
  {
    name: 'intermediate excluding the leaf’s trust domain',
    rule: 'RFC 5280 §4.2.1.10 (excludedSubtrees)',
    code: 'ERR_SVID_NAME_CONSTRAINT',
    openssl: 'fail',
    make: () => viaIntermediate({ nameConstraints: { excludedURIs: ['example.org'] } }),
  },
  {
    name: 'URI constraint ".example.org" (subdomains only) and a leaf of example.org',
    rule: 'RFC 5280 §4.2.1.10 (leading period)',
    code: 'ERR_SVID_NAME_CONSTRAINT',
    openssl: 'fail',
    make: () => viaIntermediate({ nameConstraints: { permittedURIs: ['.example.org'] } }),
  },
  {
    name: 'root constraint binds an intermediate’s own URI SAN',
    rule: 'RFC 5280 §6.1.3 (b)',
    code: 'ERR_SVID_NAME_CONSTRAINT',
    openssl: 'fail',
    make: async () => {
      const r = await ca('nc root', { nameConstraints: { permittedURIs: ['example.org'] } });
      const i = await ca('stray intermediate', { parent: r, uris: ['spiffe://other.org'] });
      return { chain: [await leaf(i), i.cert], bundles: { 'example.org': [r.cert] } };
    },
  },
  {
    name: 'DNS SAN outside a permitted dNSName subtree',
    rule: 'RFC 5280 §4.2.1.10 (dNSName)',
    code: 'ERR_SVID_NAME_CONSTRAINT',
    openssl: 'fail',
    make: () =>
      viaIntermediate({ nameConstraints: { permittedURIs: ['example.org'], permittedDNS: ['example.org'] } }, { dnsNames: ['evil.com'] }),
  },
  {
    name: 'directoryName constraint (a form verdict does not evaluate)',
    rule: 'RFC 5280 §4.2.1.10; deny on doubt',
    code: 'ERR_SVID_NAME_CONSTRAINT',
    openssl: 'fail',
    make: () => viaIntermediate({ nameConstraints: { permittedDirectoryName: true } }),
  },
  {
    name: 'name constraints of an issuer whose own signature fails are not evaluated',
    rule: 'RFC 5280 §6.1 (constraints come from a verified path)',
    code: 'ERR_SVID_SIGNATURE',
    openssl: 'fail',
    make: async () => {
      // Named as signed by the root, signed by another key: its constraint (which the leaf breaks) must not decide.
      const fake = await ca('unvouched CA', { parent: await impostorOf(root), nameConstraints: { permittedURIs: ['other.org'] } });
      const i = await ca('below the unvouched CA', { parent: fake, uris: ['spiffe://example.org'] });
      return { chain: [await leaf(i), i.cert, fake.cert] };
    },
  },
  // --- critical extensions ---
  {
    name: 'unknown critical extension on the leaf',
    rule: 'RFC 5280 §4.2',
    code: 'ERR_SVID_CRITICAL_EXTENSION',
    openssl: 'fail',
    make: async () => ({ chain: [await leaf(root, { unknownCritical: true })] }),
  },
  {
    name: 'unknown critical extension on an intermediate',
    rule: 'RFC 5280 §4.2',
    code: 'ERR_SVID_CRITICAL_EXTENSION',
    openssl: 'fail',
    make: () => viaIntermediate({ unknownCritical: true }),
  },
  {
    name: 'unknown critical extension on the root',
    rule: 'RFC 5280 §4.2',
    code: 'ERR_SVID_CRITICAL_EXTENSION',
    openssl: 'fail',
    make: () => viaRoot({ unknownCritical: true }),
  },
  // --- validity of every certificate ---
  {
    name: 'expired leaf',
    rule: 'RFC 5280 §6.1.3 (a)(2)',
    code: 'ERR_SVID_EXPIRED',
    openssl: 'fail',
    make: async () => ({ chain: [await leaf(root, past)] }),
  },
  {
    name: 'leaf not yet valid',
    rule: 'RFC 5280 §6.1.3 (a)(2)',
    code: 'ERR_SVID_NOT_YET_VALID',
    openssl: 'fail',
    make: async () => ({ chain: [await leaf(root, future)] }),
  },
  {
    name: 'expired intermediate',
    rule: 'RFC 5280 §6.1.3 (a)(2)',
    code: 'ERR_SVID_EXPIRED',
    openssl: 'fail',
    make: () => viaIntermediate(past, { notBefore: new Date(Date.now() - 2 * DAY) }),
  },
  {
    name: 'intermediate not yet valid',
    rule: 'RFC 5280 §6.1.3 (a)(2)',
    code: 'ERR_SVID_NOT_YET_VALID',
    openssl: 'fail',
    make: () => viaIntermediate(future),
  },
  {
    name: 'expired root',
    rule: 'RFC 5280 §6.1.3 (a)(2)',
    code: 'ERR_SVID_EXPIRED',
    openssl: 'fail',
    make: () => viaRoot(past, { notBefore: new Date(Date.now() - 2 * DAY) }),
  },
  // --- SPIFFE ID ---
  {
    name: 'leaf SPIFFE ID without a path',
    rule: 'X509-SVID §3.1',
    code: 'ERR_SVID_BAD_SAN',
    openssl: 'ok',
    differs: 'SPIFFE rule',
    make: async () => ({ chain: [await leaf(root, {}, 'spiffe://example.org')] }),
  },
  {
    name: 'two URI SANs',
    rule: 'X509-SVID §2',
    code: 'ERR_SVID_BAD_SAN',
    openssl: 'ok',
    differs: 'SPIFFE rule',
    make: async () => ({ chain: [await leaf(root, { uris: [ID, `${ID}2`] })] }),
  },
  {
    name: 'no URI SAN',
    rule: 'X509-SVID §2',
    code: 'ERR_SVID_BAD_SAN',
    openssl: 'ok',
    differs: 'SPIFFE rule',
    make: async () => ({ chain: [await leaf(root, { uris: [] })] }),
  },
  {
    name: 'URI SAN that is not a SPIFFE ID',
    rule: 'X509-SVID §2; SPIFFE-ID §2',
    code: 'ERR_SVID_BAD_SAN',
    openssl: 'ok',
    differs: 'SPIFFE rule',
    make: async () => ({ chain: [await leaf(root, { uris: ['https://example.org/web'] })] }),
  },
  // --- signatures and trust ---
  {
    name: 'leaf signature altered',
    rule: 'RFC 5280 §6.1.3 (a)(1)',
    code: 'ERR_SVID_SIGNATURE',
    openssl: 'fail',
    make: async () => ({ chain: [new X509Certificate(withBadSignature((await issueX509SVID(root, ID)).pem))] }),
  },
  {
    name: 'impostor root of the same name signed the leaf',
    rule: 'RFC 5280 §6.1.3 (a)(1)',
    code: 'ERR_SVID_SIGNATURE',
    openssl: 'fail',
    make: async () => ({ chain: [await leaf(await ca('example.org root', {}))] }),
  },
  {
    name: 'intermediate not presented',
    rule: 'RFC 5280 §6.1',
    code: 'ERR_SVID_UNTRUSTED',
    openssl: 'fail',
    make: async () => ({ chain: [await leaf(int2), int2.cert] }),
  },
  {
    name: 'leaf of example.org signed by the other.org root',
    rule: 'X509-SVID §5.1 (only its own trust domain’s bundle)',
    code: 'ERR_SVID_UNTRUSTED',
    openssl: 'fail',
    make: async () => ({ chain: [await leaf(otherRoot)] }),
  },
  {
    name: 'intermediate from a foreign root',
    rule: 'X509-SVID §5.1',
    code: 'ERR_SVID_UNTRUSTED',
    openssl: 'fail',
    make: async () => {
      const foreign = await ca('foreign intermediate', { parent: otherRoot });
      return { chain: [await leaf(foreign), foreign.cert] };
    },
  },
  {
    name: 'unknown trust domain',
    rule: 'X509-SVID §5.1',
    code: 'ERR_SVID_UNTRUSTED',
    openssl: 'fail',
    make: async () => ({ chain: [await leaf(otherRoot, {}, 'spiffe://unknown.org/web')] }),
  },
  {
    name: 'bundle with no X.509 authority',
    rule: 'X509-SVID §5.1',
    code: 'ERR_SVID_UNTRUSTED',
    openssl: 'n/a',
    make: async () => ({ chain: [await leaf(root)], bundles: { 'example.org': [] } }),
  },
  // --- bounded work ---
  {
    name: 'path longer than maxPathLength (2) through the extra pool',
    rule: 'bounded work (verdict)',
    code: 'ERR_SVID_UNTRUSTED',
    openssl: 'ok',
    differs: 'verdict bounds the path length it builds; OpenSSL’s default depth is 100',
    make: async () => ({ chain: [await leaf(int2)], extra: [int2.cert, int1.cert], maxPathLength: 2 }),
  },
  {
    name: 'presented chain longer than maxPathLength',
    rule: 'bounded input (verdict)',
    code: 'ERR_SVID_MALFORMED',
    openssl: 'ok',
    differs: 'verdict refuses oversized input before any work',
    make: async () => ({ chain: [await leaf(int2), int2.cert, int1.cert], maxPathLength: 2 }),
  },
  {
    name: `leaf with ${MAX_NAMES + 1} names (over the cap)`,
    rule: 'bounded input (verdict)',
    code: 'ERR_SVID_MALFORMED',
    openssl: 'ok',
    differs: 'verdict bounds the names it decodes per certificate; OpenSSL has no such bound',
    make: async () => ({ chain: [await leaf(root, { dnsNames: dnsNames(MAX_NAMES) })] }),
  },
  {
    name: `intermediate with ${MAX_SUBTREES + 1} name-constraint subtrees (over the cap)`,
    rule: 'bounded input (verdict)',
    code: 'ERR_SVID_MALFORMED',
    openssl: 'ok',
    differs: 'verdict bounds the subtrees it decodes per nameConstraints extension; OpenSSL has no such bound',
    // The cap counts permitted and excluded together; the leaf fits the constraints.
    make: () =>
      viaIntermediate({
        nameConstraints: { permittedURIs: [...trustDomains(MAX_SUBTREES - 1), 'example.org'], excludedURIs: ['other.org'] },
      }),
  },
  {
    name: '40 decoy issuers of the right name, none the signer (maxCandidates 32)',
    rule: 'bounded work (verdict)',
    code: 'ERR_SVID_UNTRUSTED',
    openssl: 'fail',
    make: async () => {
      const decoys = await Promise.all(Array.from({ length: 40 }, () => ca('example.org intermediate 1', { parent: root })));
      return { chain: [await leaf(int1)], extra: decoys.map((d) => d.cert) };
    },
  },
];

function bundlesOf(b: Built): Record<string, X509Certificate[]> {
  return b.bundles ?? { 'example.org': [root.cert], 'other.org': [otherRoot.cert] };
}

function sourceOf(b: Built): StaticBundleSource {
  return new StaticBundleSource(Object.entries(bundlesOf(b)).map(([td, certs]) => makeTrustBundle(td, certs, new Map())));
}

let fileSeq = 0;
function pemFile(certs: X509Certificate[]): string {
  const path = join(dir, `c${fileSeq++}.pem`);
  writeFileSync(path, certs.map((c) => c.toString()).join(''));
  return path;
}

/** openssl verify -x509_strict on the same path; 'ok' or 'fail'. */
function opensslVerdict(b: Built, trustDomain: string): 'ok' | 'fail' {
  const anchors = bundlesOf(b)[trustDomain] ?? bundlesOf(b)['example.org'] ?? [];
  const [leafCert, ...rest] = b.chain;
  const untrusted = [...rest, ...(b.extra ?? [])];
  const args = ['verify', '-x509_strict', '-CAfile', pemFile(anchors)];
  if (untrusted.length > 0) args.push('-untrusted', pemFile(untrusted));
  if (anchors.some((a) => a.subject !== a.issuer)) args.push('-partial_chain');
  args.push(pemFile([leafCert as X509Certificate]));
  try {
    execFileSync('openssl', args, { stdio: 'pipe' });
    return 'ok';
  } catch {
    return 'fail';
  }
}

describe('X.509-SVID path table (verdict vs openssl verify -x509_strict)', () => {
  it('has at least 40 named cases, valid controls among them', () => {
    expect(cases.length).toBeGreaterThanOrEqual(40);
    expect(cases.filter((c) => c.code === 'ok').length).toBeGreaterThanOrEqual(10);
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const built = await c.make();
    const got = codeOf(() =>
      verifyX509SVID(built.chain, sourceOf(built), {
        nowMs: Date.now(),
        ...(built.extra ? { intermediates: fixedIntermediates(built.extra) } : {}),
        ...(built.maxPathLength !== undefined ? { maxPathLength: built.maxPathLength } : {}),
        ...(built.maxCandidates !== undefined ? { maxCandidates: built.maxCandidates } : {}),
      }),
    );
    expect(got, `${c.name} (${c.rule})`).toBe(c.code === 'ok' ? 'no error' : c.code);
    if (c.openssl === 'n/a') return;
    expect(
      opensslVerdict(built, built.trustDomain ?? 'example.org'),
      `openssl on "${c.name}"${c.differs ? ` (differs: ${c.differs})` : ''}`,
    ).toBe(c.openssl);
    // A case where openssl and verdict disagree must say why.
    if ((c.code === 'ok') !== (c.openssl === 'ok')) expect(c.differs, `${c.name} needs a reason for differing from openssl`).toBeTruthy();
  });
});
