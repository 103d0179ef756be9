/** Why a cosign check over the bundle file failed (plain data: it may come back from the bundle worker). */
export type CosignBlobOutcome = 'ok' | 'digest-mismatch' | 'bad-signature';

/**
 * The part of cosign verification that reads every byte of the bundle: the sigstore bundle's message
 * digest (when present) and the signature itself. ECDSA and RSA keys sign a SHA-256 digest of the blob;
 * Ed25519 signs the blob. Self-contained on purpose (node:crypto is handed in) so that it runs as the same
 * code on the event loop for a small bundle and in the bundle worker (bundle-worker.ts) for a large one.
 */
export function cosignVerifyBlob(
  crypto: typeof import('node:crypto'),
  blob: Buffer,
  key: import('node:crypto').KeyObject,
  signature: Uint8Array,
  digest: Uint8Array | null,
): CosignBlobOutcome {
  if (digest !== null) {
    const actual = crypto.createHash('sha256').update(blob).digest();
    if (digest.length !== actual.length || !crypto.timingSafeEqual(digest, actual)) return 'digest-mismatch';
  }
  try {
    return crypto.verify(key.asymmetricKeyType === 'ed25519' ? null : 'sha256', blob, key, signature) ? 'ok' : 'bad-signature';
  } catch {
    return 'bad-signature';
  }
}
