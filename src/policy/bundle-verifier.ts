import type { BundlesConfig } from '../config/sections/bundles';
import { keyLimitProblem } from '../identity/key-limits';
import { VerdictError } from '../errors';
import type { BundleArtifact, BundleLimits, BundleSigner, PolicyBundle } from './bundle';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readConfiguredFile } from './bundle-file-read';
import { assembleBundle, checkCompressedSize } from './bundle-reader';
import { checkBundleRoots } from './bundle-roots';
import { verifyCosignSignature } from './bundle-signature-cosign';
import { keyFitsAlgorithm, verifyOPASignature, type OPAVerificationConfig } from './bundle-signature-opa';
import { StagedBundle, stagingFor } from './bundle-staged';
import { untarBounded } from './bundle-untar';
import { OFF_LOOP_BYTES } from './bundle-worker';

/** What makes a bundle trusted: a pin and/or keys. With neither, any well-formed bundle is accepted. */
export interface BundleTrust {
  limits: BundleLimits;
  /** Expected sha256 of the bundle file (hex). */
  sha256: string | null;
  opa: OPAVerificationConfig | null;
  cosignPublicKey: KeyObject | null;
  /** Deadline of each off-loop step: untar, cosign, file hashes (bundles.loadTimeoutMs). */
  loadTimeoutMs?: number;
}

/**
 * Turns delivered bytes into a trusted PolicyBundle, cheapest refusal first and before any policy byte
 * runs: size bound → sha256 pin → cosign signature over the whole file → bounded untar → OPA signature
 * over every file → manifest roots. A pin mismatch refuses a bundle even when it is validly signed (replay
 * guard). Every step that reads the whole file runs in the bundle worker that holds it (bundle-staged.ts).
 */
export async function verifyBundle(artifact: BundleArtifact, trust: BundleTrust): Promise<PolicyBundle> {
  const given = artifact.bytes;
  checkCompressedSize(given instanceof StagedBundle ? given.size : given.length, trust.limits);
  // Every step below reads the bundle file in the worker that holds it; bytes handed in are copied there once.
  return StagedBundle.use(given, stagingFor(trust.limits, trust.loadTimeoutMs), (staged) => verifyStaged(staged, artifact, trust));
}

async function verifyStaged(staged: StagedBundle, artifact: BundleArtifact, trust: BundleTrust): Promise<PolicyBundle> {
  const deadline = trust.loadTimeoutMs !== undefined ? { timeoutMs: trust.loadTimeoutMs } : {};
  const { sha256 } = staged;
  if (trust.sha256 !== null && sha256 !== trust.sha256) {
    throw new VerdictError('ERR_BUNDLE_HASH_MISMATCH', `bundle sha256 ${sha256} differs from the pinned ${trust.sha256}`);
  }
  let cosign: BundleSigner['cosign'] = null;
  if (trust.cosignPublicKey !== null) {
    if (artifact.cosignSignature === undefined) {
      throw new VerdictError(
        'ERR_BUNDLE_SIGNATURE',
        'bundle is unsigned: no cosign signature came with it, and a cosign key is configured',
      );
    }
    cosign = await verifyCosignSignature(staged, artifact.cosignSignature, trust.cosignPublicKey, deadline);
  }
  const untarred = await untarBounded(staged, trust.limits, {
    timeoutMs: trust.loadTimeoutMs,
    // Large files stay in the worker that untars them until their signature verified, and are hashed there.
    ...(trust.opa !== null ? { holdFrom: OFF_LOOP_BYTES } : {}),
  });
  let opa: BundleSigner['opa'] = null;
  try {
    if (trust.opa !== null) {
      opa = await verifyOPASignature(untarred.files, trust.opa, { ...deadline, held: untarred.held, hashHeld: untarred.hashHeld });
    }
    await untarred.takeHeld();
  } catch (err) {
    untarred.discard();
    throw err;
  }
  const bundle = assembleBundle(untarred.files, artifact.origin, sha256, staged.size);
  checkBundleRoots(bundle);
  return { ...bundle, signer: opa === null && cosign === null ? null : { opa, cosign } };
}

/**
 * Reads and parses the key files named in config once, at start-up: a missing, unreadable, garbage or
 * private key, or one that cannot verify its configured algorithm, is a config error before anything serves.
 */
export function trustFromConfig(config: BundlesConfig): BundleTrust {
  const opa: OPAVerificationConfig | null =
    config.opaSigning === null
      ? null
      : {
          keys: Object.fromEntries(
            Object.entries(config.opaSigning.keys).map(([id, k]) => {
              const publicKey = readPublicKey(k.keyFile);
              if (!keyFitsAlgorithm(publicKey, k.algorithm))
                throw new VerdictError(
                  'ERR_CONFIG',
                  `bundle verification key ${k.keyFile} (${keyKind(publicKey)}) cannot verify ${k.algorithm}`,
                );
              return [id, { algorithm: k.algorithm, publicKey, scope: k.scope }];
            }),
          ),
          keyId: config.opaSigning.keyId,
          scope: config.opaSigning.scope,
        };
  return {
    limits: config.limits,
    sha256: config.sha256,
    opa,
    cosignPublicKey: config.cosign === null ? null : readPublicKey(config.cosign.publicKeyFile),
    loadTimeoutMs: config.loadTimeoutMs,
  };
}

/** A PEM public key or certificate file as a public KeyObject (the only form kept). */
export function readPublicKey(path: string): KeyObject {
  return publicKeyFromPEM(readConfiguredFile(path, 'bundle verification key').toString('utf8'), `bundle verification key ${path}`);
}

/**
 * A private key is refused, not turned into its public half: its material would stay in the serving process
 * (and the file is one a verifier should never be able to read). Node's parse errors are not passed on. The
 * key must be one verdict checks signatures with anywhere (identity/key-limits.ts): an RSA-1024 signing key
 * would let whoever factors it sign bundles.
 */
export function publicKeyFromPEM(pem: string, what: string): KeyObject {
  if (/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(pem))
    throw new VerdictError('ERR_CONFIG', `${what} holds a private key; give its public key`);
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    throw new VerdictError('ERR_CONFIG', `${what} is not a PEM public key or certificate`);
  }
  const problem = keyLimitProblem(key);
  if (problem !== null) throw new VerdictError('ERR_CONFIG', `${what} ${problem}`);
  return key;
}

function keyKind(key: KeyObject): string {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  return curve === undefined ? (key.asymmetricKeyType ?? 'unknown') : `${key.asymmetricKeyType ?? 'ec'} ${curve}`;
}
