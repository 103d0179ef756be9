import * as crypto from 'node:crypto';
import { VerdictError } from '../errors';
import { DEFAULT_LOAD_TIMEOUT_MS } from './bundle';
import { cosignVerifyBlob, type CosignBlobOutcome } from './bundle-cosign-blob';
import { StagedBundle } from './bundle-staged';
import { OFF_LOOP_BYTES } from './bundle-worker';

/**
 * Verifies a cosign `sign-blob --key` signature over the bundle file, offline, with a plain public key.
 * Accepted forms (what cosign 2.x writes):
 *  - the detached signature (`--output-signature`): base64 of an ASN.1 DER signature;
 *  - cosign's own bundle (`--bundle`): JSON with `base64Signature`;
 *  - a sigstore bundle (`--new-bundle-format --bundle`): JSON with `messageSignature.{messageDigest,signature}`.
 * ECDSA (P-256/384) and RSA keys sign a SHA-256 digest of the blob; Ed25519 signs the blob itself.
 * Transparency-log entries are not checked: trust comes from the configured key (keyed signing). A bundle of
 * OFF_LOOP_BYTES or more (or one staged in a worker) is hashed and verified in the bundle worker, so the event
 * loop never reads it whole.
 */
export async function verifyCosignSignature(
  blob: Buffer | StagedBundle,
  signatureFile: Buffer,
  publicKey: crypto.KeyObject,
  options: { timeoutMs?: number } = {},
): Promise<{ form: CosignSignatureForm }> {
  const { signature, digest, form } = parseSignatureFile(signatureFile);
  const outcome =
    blob instanceof Buffer && blob.length < OFF_LOOP_BYTES
      ? cosignVerifyBlob(crypto, blob, publicKey, signature, digest)
      : await verifyOffLoop(blob, publicKey, signature, digest, options);
  if (outcome === 'digest-mismatch') throw sigError('sigstore bundle message digest does not match the bundle file');
  if (outcome !== 'ok') throw sigError('cosign signature does not verify with the configured public key');
  return { form };
}

/** Reading every byte of a large bundle (hash, then verify) would block the event loop: the worker holding it does it. */
async function verifyOffLoop(
  blob: Buffer | StagedBundle,
  publicKey: crypto.KeyObject,
  signature: Buffer,
  digest: Buffer | null,
  options: { timeoutMs?: number },
): Promise<CosignBlobOutcome> {
  const staging = { heapMb: 64, timeoutMs: options.timeoutMs ?? DEFAULT_LOAD_TIMEOUT_MS };
  return StagedBundle.use(blob, staging, async (staged) => {
    const { value } = await staged.worker.run<CosignBlobOutcome>('cosign', {
      // A KeyObject is cloned into the worker as the key itself: no PEM is passed around.
      payload: { publicKey, signature, digest },
      transfer: [],
      timeoutMs: staging.timeoutMs,
      codes: [],
      what: 'verifying the cosign signature',
    });
    return value;
  });
}

export type CosignSignatureForm = 'detached' | 'cosign-bundle' | 'sigstore-bundle';

const MAX_SIGNATURE_FILE_BYTES = 1024 * 1024;

function parseSignatureFile(raw: Buffer): { signature: Buffer; digest: Buffer | null; form: CosignSignatureForm } {
  if (raw.length > MAX_SIGNATURE_FILE_BYTES) throw sigError('cosign signature file is too large');
  const text = raw.toString('utf8').trim();
  if (!text.startsWith('{')) return { signature: base64(text, 'detached signature'), digest: null, form: 'detached' };
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw sigError('cosign bundle is not valid JSON');
  }
  if (typeof doc.base64Signature === 'string') {
    return { signature: base64(doc.base64Signature, 'base64Signature'), digest: null, form: 'cosign-bundle' };
  }
  const ms = doc.messageSignature as { messageDigest?: { algorithm?: unknown; digest?: unknown }; signature?: unknown } | undefined;
  if (typeof ms?.signature === 'string') {
    const md = ms.messageDigest;
    if (md === undefined || md.algorithm !== 'SHA2_256' || typeof md.digest !== 'string') {
      throw sigError('sigstore bundle message digest must be SHA2_256');
    }
    return { signature: base64(ms.signature, 'signature'), digest: base64(md.digest, 'messageDigest'), form: 'sigstore-bundle' };
  }
  throw sigError('cosign signature file has no signature (expected base64, a cosign bundle or a sigstore bundle)');
}

function base64(s: string, what: string): Buffer {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(s)) throw sigError(`cosign ${what} is not base64`);
  return Buffer.from(s, 'base64');
}

function sigError(message: string): VerdictError {
  return new VerdictError('ERR_BUNDLE_SIGNATURE', message);
}
