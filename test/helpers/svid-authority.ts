import 'reflect-metadata';
import { KeyObject, X509Certificate, sign, webcrypto } from 'node:crypto';

type CryptoKeyPair = webcrypto.CryptoKeyPair;
type CryptoKey = webcrypto.CryptoKey;
import * as px509 from '@peculiar/x509';
import { exportJWK, SignJWT, generateKeyPair, type JWK } from 'jose';

/**
 * Test CAs, X509-SVIDs and JWT-SVIDs minted at run time (good ones and every kind of bad one), so the
 * verifiers are exercised against real certificates and signatures, never fixtures frozen in time.
 */
px509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof px509.cryptoProvider.set>[0]);

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

export interface TestCA {
  name: string;
  cert: X509Certificate;
  pem: string;
  keys: CryptoKeyPair;
}

export interface CertOptions {
  notBefore?: Date;
  notAfter?: Date;
  /** Add an Authority Key Identifier (default true; RFC 5280 §4.2.1.1). */
  withAKI?: boolean;
  /** Add an extension of an OID no verifier knows, marked critical (RFC 5280 §4.2). */
  unknownCritical?: boolean;
  /** Reuse these keys (a re-issued CA keeps its key). */
  keys?: CryptoKeyPair;
  /** An RSA key of this many bits (exponent 65537) instead of a P-256 one. */
  rsaModulusBits?: number;
}

export interface NameConstraintOptions {
  permittedURIs?: string[];
  excludedURIs?: string[];
  permittedDNS?: string[];
  /** A directoryName constraint (a form verdict does not evaluate). */
  permittedDirectoryName?: boolean;
}

export interface CAOptions extends CertOptions {
  parent?: TestCA;
  keyCertSign?: boolean;
  /** Key usage bits as given (null: no key usage extension); overrides keyCertSign. */
  keyUsage?: number | null;
  /** basicConstraints cA (default true). */
  ca?: boolean;
  pathLen?: number;
  nameConstraints?: NameConstraintOptions;
  /** URI SANs on the CA (SPIRE puts the trust domain's ID on its CAs). */
  uris?: string[];
  /** Subject DN (default `CN=<name>`). */
  subject?: string;
  /** Copy this certificate's subject Name byte for byte (an impostor of a real CA). */
  subjectOf?: X509Certificate;
}

let serial = 1;
function nextSerial(): string {
  return (serial++).toString(16).padStart(2, '0');
}

/** The issuer's subject Name exactly as encoded in its certificate (name chaining compares the bytes). */
function issuerName(issuer: X509Certificate): px509.Name {
  return new px509.X509Certificate(issuer.raw).subjectName;
}

function toNode(cert: px509.X509Certificate): X509Certificate {
  return new X509Certificate(Buffer.from(cert.rawData));
}

async function newKeys(rsaModulusBits?: number): Promise<CryptoKeyPair> {
  const algorithm =
    rsaModulusBits === undefined
      ? EC
      : { name: 'RSASSA-PKCS1-v1_5', modulusLength: rsaModulusBits, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' };
  return (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as CryptoKeyPair;
}

/** The certificate signature algorithm for what `key` signs. */
function signingAlgorithm(key: CryptoKey): Algorithm | EcdsaParams {
  return key.algorithm.name === 'ECDSA' ? SIGN : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
}

type Algorithm = webcrypto.Algorithm;
type EcdsaParams = webcrypto.EcdsaParams;

/** Minimal DER writer, for what @peculiar/x509 has no class for (name constraints, hostile fields). */
export function der(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, content]);
}

function subtrees(tag: number, names: Buffer[]): Buffer[] {
  return names.length === 0 ? [] : [der(tag, Buffer.concat(names.map((n) => der(0x30, n))))];
}

/** nameConstraints (RFC 5280 §4.2.1.10), critical as the RFC requires. */
function nameConstraintsExtension(nc: NameConstraintOptions): px509.Extension {
  const ia5 = (tag: number) => (v: string) => der(tag, Buffer.from(v, 'latin1'));
  const permitted = [...(nc.permittedURIs ?? []).map(ia5(0x86)), ...(nc.permittedDNS ?? []).map(ia5(0x82))];
  if (nc.permittedDirectoryName) {
    // [4] directoryName: Name ::= SEQUENCE OF RDN; O=example
    const o = der(0x31, der(0x30, Buffer.concat([der(0x06, Buffer.from('55040a', 'hex')), der(0x0c, Buffer.from('example'))])));
    permitted.push(der(0xa4, der(0x30, o)));
  }
  const excluded = (nc.excludedURIs ?? []).map(ia5(0x86));
  const value = der(0x30, Buffer.concat([...subtrees(0xa0, permitted), ...subtrees(0xa1, excluded)]));
  return new px509.Extension('2.5.29.30', true, value);
}

/** An extension under a private-arc OID (1.3.6.1.4.1.55555.1), critical: a verifier must refuse it. */
function unknownCriticalExtension(): px509.Extension {
  return new px509.Extension('1.3.6.1.4.1.55555.1', true, der(0x05, Buffer.alloc(0)));
}

async function keyIDExtensions(publicKey: CryptoKey, issuerPublicKey: CryptoKey | null, withAKI: boolean): Promise<px509.Extension[]> {
  const out: px509.Extension[] = [await px509.SubjectKeyIdentifierExtension.create(publicKey)];
  if (withAKI && issuerPublicKey) out.push(await px509.AuthorityKeyIdentifierExtension.create(issuerPublicKey));
  return out;
}

/** A root CA (self-signed), or an intermediate when `parent` is given. */
export async function createCA(name: string, opts: CAOptions = {}): Promise<TestCA> {
  const keys = opts.keys ?? (await newKeys(opts.rsaModulusBits));
  const now = Date.now();
  const usages =
    opts.keyUsage !== undefined
      ? opts.keyUsage
      : opts.keyCertSign === false
        ? px509.KeyUsageFlags.digitalSignature
        : px509.KeyUsageFlags.keyCertSign | px509.KeyUsageFlags.cRLSign;
  const extensions: px509.Extension[] = [new px509.BasicConstraintsExtension(opts.ca ?? true, opts.pathLen, true)];
  if (usages !== null) extensions.push(new px509.KeyUsagesExtension(usages, true));
  // A self-signed root's AKI would name its own key; RFC 5280 §4.2.1.1 lets it be omitted there.
  extensions.push(...(await keyIDExtensions(keys.publicKey, opts.parent?.keys.publicKey ?? null, opts.withAKI ?? true)));
  if (opts.uris) extensions.push(new px509.SubjectAlternativeNameExtension(opts.uris.map((value) => ({ type: 'url' as const, value }))));
  if (opts.nameConstraints) extensions.push(nameConstraintsExtension(opts.nameConstraints));
  if (opts.unknownCritical) extensions.push(unknownCriticalExtension());
  const subject = opts.subjectOf ? issuerName(opts.subjectOf) : (opts.subject ?? `CN=${name}`);
  const common = {
    serialNumber: nextSerial(),
    notBefore: opts.notBefore ?? new Date(now - DAY_MS),
    notAfter: opts.notAfter ?? new Date(now + 365 * DAY_MS),
    signingAlgorithm: signingAlgorithm((opts.parent?.keys ?? keys).privateKey),
    extensions,
  };
  const cert = opts.parent
    ? await px509.X509CertificateGenerator.create({
        ...common,
        subject,
        issuer: issuerName(opts.parent.cert),
        publicKey: keys.publicKey,
        signingKey: opts.parent.keys.privateKey,
      })
    : await px509.X509CertificateGenerator.createSelfSigned({ ...common, name: subject, keys });
  return { name, cert: toNode(cert), pem: cert.toString('pem'), keys };
}

export interface LeafOptions extends CertOptions {
  /** URI SANs (exactly one SPIFFE ID for a good SVID). */
  uris?: string[];
  dnsNames?: string[];
  ca?: boolean;
  keyUsage?: number | null;
}

export interface TestSVID {
  cert: X509Certificate;
  pem: string;
  keys: CryptoKeyPair;
}

/** An X509-SVID issued by `issuer`; options make it bad in exactly one way. */
export async function issueX509SVID(issuer: TestCA, spiffeID: string, opts: LeafOptions = {}): Promise<TestSVID> {
  const keys = opts.keys ?? (await newKeys(opts.rsaModulusBits));
  const now = Date.now();
  const names = [
    ...(opts.uris ?? [spiffeID]).map((value) => ({ type: 'url' as const, value })),
    ...(opts.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
  ];
  const extensions: px509.Extension[] = [
    new px509.BasicConstraintsExtension(opts.ca ?? false, undefined, true),
    ...(names.length > 0 ? [new px509.SubjectAlternativeNameExtension(names)] : []),
    ...(await keyIDExtensions(keys.publicKey, issuer.keys.publicKey, opts.withAKI ?? true)),
  ];
  const ku =
    opts.keyUsage === undefined
      ? px509.KeyUsageFlags.digitalSignature | px509.KeyUsageFlags.keyEncipherment | px509.KeyUsageFlags.keyAgreement
      : opts.keyUsage;
  if (ku !== null) extensions.push(new px509.KeyUsagesExtension(ku, true));
  if (opts.unknownCritical) extensions.push(unknownCriticalExtension());
  const cert = await px509.X509CertificateGenerator.create({
    serialNumber: nextSerial(),
    subject: 'O=SPIRE, C=US',
    issuer: issuerName(issuer.cert),
    notBefore: opts.notBefore ?? new Date(now - 60_000),
    notAfter: opts.notAfter ?? new Date(now + DAY_MS),
    signingAlgorithm: signingAlgorithm(issuer.keys.privateKey),
    publicKey: keys.publicKey,
    signingKey: issuer.keys.privateKey,
    extensions,
  });
  return { cert: toNode(cert), pem: cert.toString('pem'), keys };
}

/** The elements inside a DER SEQUENCE, each with its tag and length. */
function derElements(sequence: Buffer): Buffer[] {
  const header = (at: number): { size: number; length: number } => {
    const first = sequence[at + 1] as number;
    if (first < 0x80) return { size: 2, length: first };
    let length = 0;
    for (let i = 0; i < (first & 0x7f); i++) length = length * 256 + (sequence[at + 2 + i] as number);
    return { size: 2 + (first & 0x7f), length };
  };
  const outer = header(0);
  const out: Buffer[] = [];
  for (let at = outer.size; at < outer.size + outer.length;) {
    const h = header(at);
    out.push(sequence.subarray(at, at + h.size + h.length));
    at += h.size + h.length;
  }
  return out;
}

/**
 * `cert` with parts of its tbsCertificate replaced (RFC 5280 §4.1.2.5 validity, §4.1.2.7 subjectPublicKeyInfo)
 * and signed again by `signer` (its issuer, whose key type the signature algorithm names): for contents no
 * certificate generator writes, such as dates OpenSSL cannot read or a key it cannot load.
 */
export function reissue(cert: X509Certificate, signer: TestCA, replace: { validity?: Buffer; spki?: Buffer }): X509Certificate {
  const [tbs, signatureAlgorithm] = derElements(Buffer.from(cert.raw)) as [Buffer, Buffer];
  // [0] version, serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, [3] extensions
  const fields = derElements(tbs);
  if (replace.validity) fields[4] = replace.validity;
  if (replace.spki) fields[6] = replace.spki;
  const signed = der(0x30, Buffer.concat(fields));
  const signature = sign('sha256', signed, KeyObject.from(signer.keys.privateKey));
  return new X509Certificate(
    der(0x30, Buffer.concat([signed, signatureAlgorithm, der(0x03, Buffer.concat([Buffer.from([0]), signature]))])),
  );
}

/** A private key as PKCS#8 PEM (for SPIRE's `disk` UpstreamAuthority, or a TLS client). */
export async function privateKeyPEM(keys: CryptoKeyPair): Promise<string> {
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const body = (pkcs8.toString('base64').match(/.{1,64}/g) ?? []).join('\n');
  return `-----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY-----\n`;
}

/** A test CA as PEM files' contents (certificate, PKCS#8 key). */
export async function exportCA(ca: TestCA): Promise<{ certPEM: string; keyPEM: string }> {
  return { certPEM: ca.pem, keyPEM: await privateKeyPEM(ca.keys) };
}

/** The same certificate with one signed byte changed (subject O=SPIRE → O=SPIRF), so its signature no longer fits. */
export function withBadSignature(pem: string): string {
  const der = Buffer.from(new X509Certificate(pem).raw);
  const at = der.indexOf('SPIRE');
  if (at < 0) throw new TypeError('withBadSignature expects a certificate from issueX509SVID');
  der[at + 4] = 'F'.charCodeAt(0);
  return `-----BEGIN CERTIFICATE-----\n${(der.toString('base64').match(/.{1,64}/g) ?? []).join('\n')}\n-----END CERTIFICATE-----\n`;
}

/** What Envoy puts in attributes.source.certificate. */
export function envoyCertificateField(...pems: string[]): string {
  return encodeURIComponent(pems.join(''));
}

export interface JWTAuthority {
  kid: string;
  privateKey: CryptoKey | KeyObject;
  publicJWK: JWK;
}

export async function createJWTAuthority(kid: string, alg = 'ES256'): Promise<JWTAuthority> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, privateKey, publicJWK: { ...(await exportJWK(publicKey)), kid, use: 'jwt-svid' } };
}

/** A SPIFFE bundle (JWK set, Trust Domain and Bundle §4) holding X.509 and JWT authorities. */
export function spiffeBundleJSON(cas: TestCA[], jwt: JWTAuthority[]): string {
  const keys = [
    ...cas.map((ca) => ({ use: 'x509-svid', kty: 'EC', crv: 'P-256', x5c: [Buffer.from(ca.cert.raw).toString('base64')] })),
    ...jwt.map((a) => a.publicJWK),
  ];
  return JSON.stringify({ keys });
}

export interface JWTOptions {
  /** null: no aud claim. */
  audience?: string | string[] | null;
  expiresInS?: number | null;
  /** null: no kid header. */
  kid?: string | null;
  alg?: string;
  /** null: no sub claim. */
  sub?: string | null;
  /** null: no typ header. */
  typ?: string | null;
  /** Extra protected-header parameters (e.g. `crit`). */
  header?: Record<string, unknown>;
  /** Extra claims (e.g. `nbf`), or claims overriding the defaults. */
  claims?: Record<string, unknown>;
  /** Sign with this key instead of the authority's (the header still names the authority's kid). */
  signingKey?: CryptoKey | KeyObject;
}

export async function mintJWTSVID(authority: JWTAuthority, spiffeID: string, opts: JWTOptions = {}): Promise<string> {
  const nowS = Math.floor(Date.now() / 1000);
  const header: Record<string, unknown> = { alg: opts.alg ?? 'ES256', ...opts.header };
  const kid = opts.kid === undefined ? authority.kid : opts.kid;
  if (kid !== null) header.kid = kid;
  const typ = opts.typ === undefined ? 'JWT' : opts.typ;
  if (typ !== null) header.typ = typ;
  const jwt = new SignJWT({ ...opts.claims }).setProtectedHeader(header as { alg: string }).setIssuedAt(nowS);
  const sub = opts.sub === undefined ? spiffeID : opts.sub;
  if (sub !== null) jwt.setSubject(sub);
  const aud = opts.audience === undefined ? 'verdict' : opts.audience;
  if (aud !== null) jwt.setAudience(aud);
  if (opts.expiresInS !== null) jwt.setExpirationTime(nowS + (opts.expiresInS ?? 300));
  return jwt.sign(opts.signingKey ?? authority.privateKey);
}

/**
 * An ES256 JWS compact token over a header and payload given as JSON text: for what neither jose nor
 * JSON.stringify writes (a `crit` jose does not know, 1e400, deep nesting, non-string audiences).
 */
export function signedJWT(privateKey: CryptoKey | KeyObject, headerJSON: string, payloadJSON: string): string {
  const input = `${Buffer.from(headerJSON).toString('base64url')}.${Buffer.from(payloadJSON).toString('base64url')}`;
  const key = privateKey instanceof KeyObject ? privateKey : KeyObject.from(privateKey);
  return `${input}.${sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}

/** An unsigned token (`alg: none`), built by hand since jose refuses to make one. */
export function unsecuredJWT(spiffeID: string, audience = 'verdict'): string {
  const enc = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${enc({ alg: 'none', kid: 'k1' })}.${enc({ sub: spiffeID, aud: audience, exp: Math.floor(Date.now() / 1000) + 300 })}.`;
}

/** An HS256 token with a key id that exists in the bundle (an algorithm-confusion attempt). */
export async function hmacJWT(spiffeID: string, kid: string): Promise<string> {
  const secret = new TextEncoder().encode('a shared secret is not an identity');
  const nowS = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', kid })
    .setSubject(spiffeID)
    .setAudience('verdict')
    .setExpirationTime(nowS + 300)
    .sign(secret);
}
