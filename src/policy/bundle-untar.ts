import { DEFAULT_BUNDLE_LIMITS, DEFAULT_LOAD_TIMEOUT_MS, type BundleLimits } from './bundle';
import type { PrecomputedHash } from './bundle-signed-hashes';
import type { UntarBounds } from './bundle-untar-stream';
import { copyInSlices, runStagedInBundleWorker } from './bundle-worker';

/** The archive's files; with `hashSignedFrom`, the large ones may still be held by the worker. */
export interface UntarResult {
  files: Map<string, Buffer>;
  /** Large files the worker holds back until the signature over them is verified (name → size). */
  held: Map<string, number>;
  signedHashes: Map<string, PrecomputedHash>;
  /** Takes the held files into `files` (transferred, not copied). */
  takeHeld(): Promise<void>;
  /** Ends the worker and drops what it holds (a refused bundle). */
  discard(): void;
}

/**
 * Inflates and untars a bundle within its bounds (bundle-untar-stream.ts) in the bundle worker: the event
 * loop hands over a copy of the compressed bytes, a slice per turn, and receives the finished files, each
 * buffer transferred rather than copied — or a coded refusal (ERR_BUNDLE_INVALID, _TOO_LARGE, _UNSAFE_PATH).
 * A 50 MB inflate, its garbage and the collections it causes never touch the event loop, whatever the
 * archive holds (a tiny gzip bomb included). The step has the load deadline (ERR_BUNDLE_LOAD_TIMEOUT).
 * With `hashSignedFrom`, files of that size or more are hashed there as OPA's signature lists them
 * (bundle-signed-hashes.ts) and held back until `takeHeld()`: a bundle refused by its signature never moves
 * its large files to the event loop at all. Every caller ends with takeHeld() or discard().
 */
export async function untarBounded(
  gz: Buffer,
  limits: BundleLimits,
  options: { timeoutMs?: number | undefined; hashSignedFrom?: number } = {},
): Promise<UntarResult> {
  const { maxUncompressedBytes, maxFiles, maxFileBytes, maxPathDepth } = { ...DEFAULT_BUNDLE_LIMITS, ...limits };
  const bounds: UntarBounds = { maxUncompressedBytes, maxFiles, maxFileBytes, maxPathDepth };
  const copy = await copyInSlices(gz);
  type Entries = [string, Uint8Array][];
  const staged = await runStagedInBundleWorker<{ files: Entries; hashes: [string, PrecomputedHash][]; held: [string, number][] }, Entries>(
    'untar',
    {
      payload: { gz: copy, bounds, hashSignedFrom: options.hashSignedFrom ?? 0 },
      transfer: [copy.buffer as ArrayBuffer],
      timeoutMs: options.timeoutMs ?? DEFAULT_LOAD_TIMEOUT_MS,
      // File bytes live in buffers, outside the heap; the canonical text of a signed data.json is a string
      // about its size again (2 bytes a char), so the heap is sized like the hashing task's.
      heapMb: Math.max(256, Math.ceil((6 * bounds.maxUncompressedBytes) / 2 ** 20)),
      codes: ['ERR_BUNDLE_INVALID', 'ERR_BUNDLE_TOO_LARGE', 'ERR_BUNDLE_UNSAFE_PATH'],
      what: 'reading the bundle archive',
    },
  );
  const files = new Map(staged.value.files.map(([path, data]) => [path, asBuffer(data)]));
  const held = new Map(staged.value.held);
  return {
    files,
    held,
    signedHashes: new Map(staged.value.hashes),
    takeHeld: async () => {
      if (held.size === 0) return;
      for (const [path, data] of await staged.more()) files.set(path, asBuffer(data));
      held.clear();
    },
    discard: staged.stop,
  };
}

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}
