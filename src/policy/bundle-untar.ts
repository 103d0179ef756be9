import { DEFAULT_BUNDLE_LIMITS, DEFAULT_LOAD_TIMEOUT_MS, type BundleLimits } from './bundle';
import type { UntarBounds } from './bundle-untar-stream';
import { copyInSlices, runInBundleWorker } from './bundle-worker';

/**
 * Inflates and untars a bundle within its bounds (bundle-untar-stream.ts) in the bundle worker: the event
 * loop hands over a copy of the compressed bytes, a slice per turn, and receives the finished files, each
 * buffer transferred rather than copied — or a coded refusal (ERR_BUNDLE_INVALID, _TOO_LARGE, _UNSAFE_PATH).
 * A 50 MB inflate, its garbage and the collections it causes never touch the event loop, whatever the
 * archive holds (a tiny gzip bomb included). The step has the load deadline (ERR_BUNDLE_LOAD_TIMEOUT).
 */
export async function untarBounded(gz: Buffer, limits: BundleLimits, timeoutMs = DEFAULT_LOAD_TIMEOUT_MS): Promise<Map<string, Buffer>> {
  const { maxUncompressedBytes, maxFiles, maxFileBytes, maxPathDepth } = { ...DEFAULT_BUNDLE_LIMITS, ...limits };
  const bounds: UntarBounds = { maxUncompressedBytes, maxFiles, maxFileBytes, maxPathDepth };
  const copy = await copyInSlices(gz);
  const files = await runInBundleWorker<[string, Uint8Array][]>('untar', {
    payload: { gz: copy, bounds },
    transfer: [copy.buffer as ArrayBuffer],
    timeoutMs,
    // File bytes live in buffers, outside the heap; the heap holds the parser's state and one entry list.
    heapMb: 128,
    codes: ['ERR_BUNDLE_INVALID', 'ERR_BUNDLE_TOO_LARGE', 'ERR_BUNDLE_UNSAFE_PATH'],
    what: 'reading the bundle archive',
  });
  return new Map(files.map(([path, data]) => [path, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}
