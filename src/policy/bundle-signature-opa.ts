import { constants, createHash, sign, verify, type KeyObject } from 'node:crypto';
import { VerdictError } from '../errors';
import { hashFilesOffLoop, type FileHashAlgorithm, type FileToHash } from './bundle-hash-off-loop';
import type { HeldHashRequest, PrecomputedHash } from './bundle-signed-hashes';
import { OFF_LOOP_BYTES } from './bundle-worker';
import { hashStructuredJSON } from './bundle-json-hash';

/** OPA's bundle signature file (OPA docs, "Bundle signing"): one JWT over the files' hashes. */
export const SIGNATURES_FILE = '.signatures.json';

export type OPASigningAlgorithm = 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512';

export interface OPAVerificationKey {
  algorithm: OPASigningAlgorithm;
  /** The public key, parsed once when the trust is built (bundle-verifier.ts readPublicKey). */
  publicKey: KeyObject;
  /** Scope the signature must carry when verification config names none. */
  scope?: string | undefined;
}

export interface OPAVerificationConfig {
  /** Key id → key. */
  keys: Readonly<Record<string, OPAVerificationKey>>;
  /** Key id to use whatever the JWT says (OPA: bundles[].signing.keyid). */
  keyId?: string | undefined;
  scope?: string | undefined;
}

/** What a verified signature tells: who signed, and when (for rollback checks). */
export interface OPASigner {
  keyId: string;
  algorithm: OPASigningAlgorithm;
  issuedAtSec: number | null;
  issuer: string | null;
  scope: string | null;
}

interface SignedFile {
  name: string;
  hash: string;
  algorithm: string;
}

interface JWTClaims {
  files?: SignedFile[];
  keyid?: string;
  scope?: string;
  iat?: number;
  iss?: string;
}

const HASHES: Readonly<Record<string, 'sha256' | 'sha384' | 'sha512'>> = { 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512' };

/** JWS algorithm → how Node verifies it (RFC 7518 §3); `ec` is the curve an ECDSA key must be on. */
const ALGORITHMS: Readonly<Record<OPASigningAlgorithm, { hash: string; pss?: boolean; ec?: string }>> = {
  RS256: { hash: 'sha256' },
  RS384: { hash: 'sha384' },
  RS512: { hash: 'sha512' },
  PS256: { hash: 'sha256', pss: true },
  PS384: { hash: 'sha384', pss: true },
  PS512: { hash: 'sha512', pss: true },
  ES256: { hash: 'sha256', ec: 'prime256v1' },
  ES384: { hash: 'sha384', ec: 'secp384r1' },
  ES512: { hash: 'sha512', ec: 'secp521r1' },
};

/**
 * Whether a public key can verify `algorithm` at all (RFC 7518 §3.3-3.5: RSA for RS/PS, ECDSA on the named
 * curve for ES), so that a mismatched key is refused at start-up rather than by every bundle.
 */
export function keyFitsAlgorithm(key: KeyObject, algorithm: OPASigningAlgorithm): boolean {
  const alg = ALGORITHMS[algorithm];
  if (alg.ec !== undefined) return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === alg.ec;
  return key.asymmetricKeyType === 'rsa' || (alg.pss === true && key.asymmetricKeyType === 'rsa-pss');
}

export function isOPASigningAlgorithm(alg: string): alg is OPASigningAlgorithm {
  return Object.prototype.hasOwnProperty.call(ALGORITHMS, alg);
}

/**
 * Verifies `.signatures.json` the way OPA does: exactly one JWT; key chosen by config keyid, else the
 * JWT `kid`, else the `keyid` claim; algorithm fixed by the configured key (never by the token); scope
 * must match; every file in the bundle (but the signature file) is listed with a matching hash, and
 * every listed file exists. Any doubt refuses with ERR_BUNDLE_SIGNATURE.
 */
export async function verifyOPASignature(
  files: ReadonlyMap<string, Buffer>,
  config: OPAVerificationConfig,
  options: FileHashOptions = {},
): Promise<OPASigner> {
  const raw = files.get(SIGNATURES_FILE);
  if (raw === undefined) throw sigError(`bundle is unsigned: no ${SIGNATURES_FILE}, and a verification key is configured`);
  const token = singleToken(raw);
  const [headerPart, payloadPart, signaturePart] = token.split('.') as [string, string, string];
  const header = decodeSegment(headerPart, 'header');
  const claims = decodeSegment(payloadPart, 'payload') as JWTClaims;
  const keyId = config.keyId ?? str(header.kid) ?? str(claims.keyid);
  if (keyId === undefined) throw sigError('signature names no key id and none is configured');
  // Own properties only: a kid of "__proto__", "constructor" or "toString" must not reach Object.prototype.
  const key = Object.hasOwn(config.keys, keyId) ? config.keys[keyId] : undefined;
  if (key === undefined || typeof key !== 'object' || key === null) throw sigError(`signature key id "${keyId}" is not configured`);
  if (header.alg !== key.algorithm) throw sigError(`signature uses ${String(header.alg)}; key "${keyId}" is ${key.algorithm}`);
  verifyJWS(`${headerPart}.${payloadPart}`, signaturePart, key);
  const scope = config.scope ?? key.scope;
  if ((claims.scope ?? undefined) !== (scope ?? undefined)) throw sigError('signature scope does not match the configured scope');
  await verifyFileHashes(files, claims.files, options);
  return {
    keyId,
    algorithm: key.algorithm,
    issuedAtSec: typeof claims.iat === 'number' ? claims.iat : null,
    issuer: str(claims.iss) ?? null,
    scope: str(claims.scope) ?? null,
  };
}

/** Reads the claims of `.signatures.json` without verifying them (for `bundle inspect`). */
export function readOPASignatureClaims(files: ReadonlyMap<string, Buffer>): { header: Record<string, unknown>; claims: JWTClaims } | null {
  const raw = files.get(SIGNATURES_FILE);
  if (raw === undefined) return null;
  const [h, p] = singleToken(raw).split('.') as [string, string];
  return { header: decodeSegment(h, 'header'), claims: decodeSegment(p, 'payload') as JWTClaims };
}

export interface OPASignOptions {
  privateKey: KeyObject;
  algorithm: OPASigningAlgorithm;
  keyId: string;
  scope?: string | undefined;
  issuer?: string | undefined;
  issuedAtSec: number;
}

/** Builds the `.signatures.json` content for a bundle's files (the same format `opa sign` writes). */
export function signOPABundle(files: ReadonlyMap<string, Buffer>, options: OPASignOptions): Buffer {
  const listed: SignedFile[] = [];
  for (const [name, data] of files) {
    if (name === SIGNATURES_FILE) continue;
    listed.push({ name, hash: fileHash(name, data, 'sha256'), algorithm: 'SHA-256' });
  }
  const claims: JWTClaims = {
    files: listed,
    iat: options.issuedAtSec,
    ...(options.issuer ? { iss: options.issuer } : {}),
    ...(options.scope ? { scope: options.scope } : {}),
  };
  const header = { alg: options.algorithm, kid: options.keyId, typ: 'JWT' };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const alg = ALGORITHMS[options.algorithm];
  const signature = sign(alg.hash, Buffer.from(input), {
    key: options.privateKey,
    ...(alg.pss ? { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST } : {}),
    ...(alg.ec ? { dsaEncoding: 'ieee-p1363' as const } : {}),
  });
  return Buffer.from(`${JSON.stringify({ signatures: [`${input}.${signature.toString('base64url')}`] })}\n`);
}

function verifyJWS(signingInput: string, signaturePart: string, key: OPAVerificationKey): void {
  const alg = ALGORITHMS[key.algorithm];
  let ok = false;
  try {
    ok = verify(
      alg.hash,
      Buffer.from(signingInput),
      {
        key: key.publicKey,
        ...(alg.pss ? { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO } : {}),
        ...(alg.ec ? { dsaEncoding: 'ieee-p1363' as const } : {}),
      },
      Buffer.from(signaturePart, 'base64url'),
    );
  } catch {
    ok = false;
  }
  if (!ok) throw sigError('JWT signature does not verify with the configured key');
}

interface FileHashOptions {
  timeoutMs?: number;
  /** Files still held by the worker that untarred them (name → size): hashed there, after the JWT verified. */
  held?: ReadonlyMap<string, number>;
  /** Hashes held files in that worker, as the verified listing names them (bundle-untar.ts). */
  hashHeld?: (wanted: HeldHashRequest[]) => Promise<ReadonlyMap<string, PrecomputedHash>>;
}

/**
 * Every file but the signature file is listed, with a matching hash; every listed file exists. Called only
 * once the JWT over the listing has verified. Held files are hashed by the worker that holds them, with the
 * listed algorithm; other large files are hashed off the event loop now (bundle-hash-off-loop.ts); small
 * ones here.
 */
async function verifyFileHashes(
  files: ReadonlyMap<string, Buffer>,
  listed: SignedFile[] | undefined,
  options: FileHashOptions,
): Promise<void> {
  if (!Array.isArray(listed)) throw sigError('signature lists no files');
  const byName = new Map<string, SignedFile>();
  for (const f of listed) {
    if (typeof f?.name !== 'string' || typeof f.hash !== 'string') throw sigError('signature has a malformed file entry');
    byName.set(f.name.replace(/^\//, ''), f);
  }
  const large: (FileToHash & { expected: string })[] = [];
  const heldWanted: (HeldHashRequest & { expected: string })[] = [];
  const held = options.held ?? new Map<string, number>();
  for (const [name, data] of [...files, ...held]) {
    if (name === SIGNATURES_FILE) continue;
    const entry = byName.get(name);
    if (entry === undefined) throw sigError(`file "${name}" is not covered by the signature`);
    const hash = Object.hasOwn(HASHES, entry.algorithm) ? HASHES[entry.algorithm] : undefined;
    // MD5 and SHA-1 are accepted by OPA; verdict refuses them (collisions make substitution feasible).
    if (hash === undefined) throw sigError(`file "${name}" is hashed with unsupported algorithm "${entry.algorithm}"`);
    byName.delete(name);
    if (typeof data === 'number') {
      heldWanted.push({ name, algorithm: hash, structured: isStructured(name), expected: entry.hash.toLowerCase() });
      continue;
    }
    if (data.length >= OFF_LOOP_BYTES) {
      large.push({ name, data, algorithm: hash, structured: isStructured(name), expected: entry.hash.toLowerCase() });
      continue;
    }
    if (fileHash(name, data, hash) !== entry.hash.toLowerCase()) throw sigError(`file "${name}" does not match its signed hash`);
  }
  if (byName.size > 0) throw sigError(`signed file(s) missing from the bundle: ${[...byName.keys()].join(', ')}`);
  if (heldWanted.length > 0) {
    // A held file is checked by the holder's hash or not at all (deny on doubt).
    if (options.hashHeld === undefined) throw sigError(`held files cannot be hashed: ${heldWanted.map((f) => f.name).join(', ')}`);
    const hashes = await options.hashHeld(heldWanted.map(({ name, algorithm, structured }) => ({ name, algorithm, structured })));
    for (const f of heldWanted) {
      const got = hashes.get(f.name);
      if (got === undefined || got.algorithm !== f.algorithm) throw sigError(`file "${f.name}" was not hashed as its signature lists it`);
      if (typeof got.hash !== 'string') throw new VerdictError('ERR_BUNDLE_INVALID', `${f.name}: ${got.hash.error}`);
      if (got.hash !== f.expected) throw sigError(`file "${f.name}" does not match its signed hash`);
    }
  }
  if (large.length === 0) return;
  const hashes = await hashFilesOffLoop(large, options.timeoutMs);
  large.forEach((f, i) => {
    if (hashes[i] !== f.expected) throw sigError(`file "${f.name}" does not match its signed hash`);
  });
}

/** Which files OPA hashes structurally; signed YAML is refused. */
function isStructured(name: string): boolean {
  const base = name.slice(name.lastIndexOf('/') + 1);
  if (base === 'data.yaml' || base === 'data.yml') throw sigError(`signed YAML data (${name}) is not supported`);
  return base === 'data.json' || base === '.manifest';
}

/** OPA hashes data.json and .manifest structurally; everything else as bytes. data.yaml is not supported. */
function fileHash(name: string, data: Buffer, hash: FileHashAlgorithm): string {
  if (isStructured(name)) return hashStructuredJSON(data, hash);
  return createHash(hash).update(data).digest('hex');
}

/** One JWT over a file list: generous for 10,000 files, small enough to parse on the event loop. */
const MAX_SIGNATURES_BYTES = 4 * 1024 * 1024;

function singleToken(raw: Buffer): string {
  if (raw.length > MAX_SIGNATURES_BYTES) throw sigError(`${SIGNATURES_FILE} is ${raw.length} bytes (max ${MAX_SIGNATURES_BYTES})`);
  let doc: unknown;
  try {
    doc = JSON.parse(raw.toString('utf8'));
  } catch {
    throw sigError(`${SIGNATURES_FILE} is not valid JSON`);
  }
  const sigs = (doc as { signatures?: unknown }).signatures;
  if (!Array.isArray(sigs) || sigs.length !== 1 || typeof sigs[0] !== 'string') {
    throw sigError(`${SIGNATURES_FILE} must hold exactly one JWT`);
  }
  const token = sigs[0];
  if (token.split('.').length !== 3) throw sigError('signature is not a compact JWS');
  return token;
}

function decodeSegment(part: string, what: string): Record<string, unknown> {
  try {
    const v = JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as unknown;
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw sigError(`JWT ${what} is not a JSON object`);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function b64url(s: string): string {
  return Buffer.from(s).toString('base64url');
}

function sigError(message: string): VerdictError {
  return new VerdictError('ERR_BUNDLE_SIGNATURE', message);
}
