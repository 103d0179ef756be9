import { DEFAULT_BUNDLE_LIMITS, type BundleLimits } from './bundle';
import type { HeldHashRequest, PrecomputedHash } from './bundle-signed-hashes';
import { StagedBundle, stagingFor } from './bundle-staged';
import type { UntarBounds } from './bundle-untar-stream';

/** The archive's files; with `holdFrom`, the large ones may still be held by the worker. */
export interface UntarResult {
  files: Map<string, Buffer>;
  /** Large files the worker holds back until the signature over them is verified (name → size). */
  held: Map<string, number>;
  /** Hashes held files in the worker that holds them, as a verified signature lists them (bundle-signed-hashes.ts). */
  hashHeld(wanted: HeldHashRequest[]): Promise<Map<string, PrecomputedHash>>;
  /** Takes the held files into `files` (transferred, not copied). */
  takeHeld(): Promise<void>;
  /** Ends the worker and drops what it holds (a refused bundle). */
  discard(): void;
}

/**
 * Inflates and untars a bundle within its bounds (bundle-untar-stream.ts) in the bundle worker that holds
 * it (a StagedBundle: read there, or — given bytes — copied there a slice per turn) and receives the finished
 * files, each buffer transferred rather than copied — or a coded refusal (ERR_BUNDLE_INVALID, _TOO_LARGE,
 * _UNSAFE_PATH). A 50 MB inflate, its garbage and the collections it causes never touch the event loop,
 * whatever the archive holds (a tiny gzip bomb included). The step has the load deadline (ERR_BUNDLE_LOAD_TIMEOUT).
 * With `holdFrom`, files of that size or more are held back there until `takeHeld()`, and hashed there by
 * `hashHeld()` once the signature's JWT has verified (bundle-signed-hashes.ts): a bundle refused by its
 * signature never moves its large files to the event loop at all, and one whose JWT fails never hashes them. Every caller ends with takeHeld() or discard(); a worker made
 * here for given bytes ends with either, a StagedBundle's own worker with discard() or its owner's close().
 */
export async function untarBounded(
  gz: Buffer | StagedBundle,
  limits: BundleLimits,
  options: { timeoutMs?: number | undefined; holdFrom?: number } = {},
): Promise<UntarResult> {
  const { maxUncompressedBytes, maxFiles, maxFileBytes, maxPathDepth } = { ...DEFAULT_BUNDLE_LIMITS, ...limits };
  const bounds: UntarBounds = { maxUncompressedBytes, maxFiles, maxFileBytes, maxPathDepth };
  const staging = stagingFor(limits, options.timeoutMs);
  const staged = gz instanceof StagedBundle ? gz : await StagedBundle.fromBytes(gz, staging);
  const done = (): void => (staged === gz ? undefined : staged.close());
  type Entries = [string, Uint8Array][];
  const run = { transfer: [], timeoutMs: staging.timeoutMs, what: 'reading the bundle archive' };
  let first: { value: { files: Entries; held: [string, number][] }; more: boolean };
  try {
    first = await staged.worker.run('untar', {
      ...run,
      payload: { bounds, holdFrom: options.holdFrom ?? 0 },
      codes: ['ERR_BUNDLE_INVALID', 'ERR_BUNDLE_TOO_LARGE', 'ERR_BUNDLE_UNSAFE_PATH'],
    });
  } catch (err) {
    staged.close();
    throw err;
  }
  const files = new Map(first.value.files.map(([path, data]) => [path, asBuffer(data)]));
  const held = new Map(first.value.held);
  if (!first.more) done();
  return {
    files,
    held,
    hashHeld: async (wanted) => {
      if (held.size === 0 || wanted.length === 0) return new Map();
      const r = await staged.worker.run<[string, PrecomputedHash][]>('hashHeld', { ...run, payload: { files: wanted }, codes: [] });
      return new Map(r.value);
    },
    takeHeld: async () => {
      if (held.size === 0) return;
      try {
        const rest = await staged.worker.run<Entries>('more', { ...run, payload: {}, codes: [] });
        for (const [path, data] of rest.value) files.set(path, asBuffer(data));
        held.clear();
      } finally {
        done();
      }
    },
    discard: () => staged.close(),
  };
}

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}
