import { basename } from 'node:path';
import { VerdictError } from '../errors';
import { DEFAULT_BUNDLE_LIMITS, type BundleLimits, type BundleManifest, type PolicyBundle } from './bundle';
import { untarBounded } from './bundle-untar';
import type { EngineKind } from './policy-engine';

/** .manifest is parsed on the event loop: it is small by nature, so it is bounded well below other files. */
const MAX_MANIFEST_BYTES = 1024 * 1024;

/**
 * Reads an OPA-format bundle (.tar.gz) within bounds: compressed and uncompressed size (decompression-bomb
 * safe), entry count, path depth, per-file size; only regular files and directories; no "..", no
 * absolute-beyond-root or odd paths (bundle-untar.ts, in the bundle worker). Pure: no policy runs.
 */
export async function readBundle(
  bytes: Buffer,
  sourceName: string,
  limits: BundleLimits = DEFAULT_BUNDLE_LIMITS,
  knownSha256?: string,
): Promise<PolicyBundle> {
  checkCompressedSize(bytes.length, limits);
  const sha256 = knownSha256 ?? (await sha256Hex(bytes));
  const { files } = await untarBounded(bytes, limits);
  return assembleBundle(files, sourceName, sha256, bytes.length);
}

/** A PolicyBundle from untarred files: manifest, engine, name and revision. */
export function assembleBundle(files: Map<string, Buffer>, sourceName: string, sha256: string, compressedBytes: number): PolicyBundle {
  const manifest = parseManifest(files.get('.manifest'));
  const engine = detectEngine(manifest, files);
  const meta = verdictMetadata(manifest);
  return {
    name: typeof meta.name === 'string' && meta.name !== '' ? meta.name : basename(sourceName).replace(/\.tar\.gz$|\.tgz$/, ''),
    revision: typeof manifest.revision === 'string' ? manifest.revision : '',
    sha256,
    engine,
    manifest,
    files,
    compressedBytes,
  };
}

export function verdictMetadata(manifest: BundleManifest): Record<string, unknown> {
  const v = manifest.metadata?.verdict;
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

export function checkCompressedSize(size: number, limits: BundleLimits): void {
  if (size > limits.maxCompressedBytes) {
    throw new VerdictError('ERR_BUNDLE_TOO_LARGE', `bundle is ${size} bytes compressed (max ${limits.maxCompressedBytes})`);
  }
}

/** WebCrypto's digest runs on the libuv pool: hashing a large bundle does not block the event loop. */
export async function sha256Hex(bytes: Buffer): Promise<string> {
  return Buffer.from(await crypto.subtle.digest('SHA-256', bytes)).toString('hex');
}

function parseManifest(raw: Buffer | undefined): BundleManifest {
  if (raw === undefined) return {};
  if (raw.length > MAX_MANIFEST_BYTES)
    throw new VerdictError('ERR_BUNDLE_TOO_LARGE', `.manifest is ${raw.length} bytes (max ${MAX_MANIFEST_BYTES})`);
  let m: unknown;
  try {
    m = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new VerdictError('ERR_BUNDLE_INVALID', '.manifest is not valid JSON');
  }
  if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new VerdictError('ERR_BUNDLE_INVALID', '.manifest must be an object');
  return m as BundleManifest;
}

const ENGINE_KINDS: readonly EngineKind[] = ['opa', 'cedar', 'wasm'];

/** The manifest says which engine (metadata.verdict.engine); an OPA bundle with policy.wasm needs no word. */
function detectEngine(manifest: BundleManifest, files: ReadonlyMap<string, Buffer>): EngineKind {
  const declared = verdictMetadata(manifest).engine;
  if (declared !== undefined) {
    if (typeof declared !== 'string' || !ENGINE_KINDS.includes(declared as EngineKind)) {
      throw new VerdictError('ERR_BUNDLE_ENGINE', `manifest names unknown engine ${JSON.stringify(declared)}`);
    }
    return declared as EngineKind;
  }
  if (files.has('policy.wasm')) return 'opa';
  if (files.has('policies.cedar')) return 'cedar';
  throw new VerdictError('ERR_BUNDLE_ENGINE', 'bundle has no policy.wasm or policies.cedar and names no engine');
}
