import { DEFAULT_BUNDLE_LIMITS, DEFAULT_LOAD_TIMEOUT_MS, type BundleLimits } from './bundle';
import type { PrecomputedHash } from './bundle-signed-hashes';
import type { UntarBounds } from './bundle-untar-stream';
import { copyInSlices, runInBundleWorker } from './bundle-worker';

/**
 * Inflates and untars a bundle within its bounds (bundle-untar-stream.ts) in the bundle worker: the event
 * loop hands over a copy of the compressed bytes, a slice per turn, and receives the finished files, each
 * buffer transferred rather than copied — or a coded refusal (ERR_BUNDLE_INVALID, _TOO_LARGE, _UNSAFE_PATH).
 * A 50 MB inflate, its garbage and the collections it causes never touch the event loop, whatever the
 * archive holds (a tiny gzip bomb included). The step has the load deadline (ERR_BUNDLE_LOAD_TIMEOUT).
 * With `hashSignedFrom`, files of that size or more are also hashed there as OPA's signature lists them
 * (bundle-signed-hashes.ts), so that they need not be handed to a worker a second time.
 */
export async function untarBounded(
  gz: Buffer,
  limits: BundleLimits,
  options: { timeoutMs?: number | undefined; hashSignedFrom?: number } = {},
): Promise<{ files: Map<string, Buffer>; signedHashes: Map<string, PrecomputedHash> }> {
  const { maxUncompressedBytes, maxFiles, maxFileBytes, maxPathDepth } = { ...DEFAULT_BUNDLE_LIMITS, ...limits };
  const bounds: UntarBounds = { maxUncompressedBytes, maxFiles, maxFileBytes, maxPathDepth };
  const copy = await copyInSlices(gz);
  const out = await runInBundleWorker<{ files: [string, Uint8Array][]; hashes: [string, PrecomputedHash][] }>('untar', {
    payload: { gz: copy, bounds, hashSignedFrom: options.hashSignedFrom ?? 0 },
    transfer: [copy.buffer as ArrayBuffer],
    timeoutMs: options.timeoutMs ?? DEFAULT_LOAD_TIMEOUT_MS,
    // File bytes live in buffers, outside the heap; the canonical text of a signed data.json is a string
    // about its size again (2 bytes a char), so the heap is sized like the hashing task's.
    heapMb: Math.max(256, Math.ceil((6 * bounds.maxUncompressedBytes) / 2 ** 20)),
    codes: ['ERR_BUNDLE_INVALID', 'ERR_BUNDLE_TOO_LARGE', 'ERR_BUNDLE_UNSAFE_PATH'],
    what: 'reading the bundle archive',
  });
  return {
    files: new Map(out.files.map(([path, data]) => [path, Buffer.from(data.buffer, data.byteOffset, data.byteLength)])),
    signedHashes: new Map(out.hashes),
  };
}
