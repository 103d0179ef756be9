import { basename } from 'node:path';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { extract } from 'tar-stream';
import { VerdictError } from '../errors';
import { DEFAULT_BUNDLE_LIMITS, type BundleLimits, type BundleManifest, type PolicyBundle } from './bundle';
import type { EngineKind } from './policy-engine';

/**
 * Reads an OPA-format bundle (.tar.gz) within bounds: compressed and uncompressed size (decompression-bomb
 * safe), file count; only regular files; no "..", no absolute-beyond-root or odd paths. Pure: no policy runs.
 */
export async function readBundle(
  bytes: Buffer,
  sourceName: string,
  limits: BundleLimits = DEFAULT_BUNDLE_LIMITS,
  knownSha256?: string,
): Promise<PolicyBundle> {
  checkCompressedSize(bytes, limits);
  const sha256 = knownSha256 ?? (await sha256Hex(bytes));
  const tar = await gunzipBounded(bytes, limits.maxUncompressedBytes);
  const files = await untar(tar, limits.maxFiles);
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
    compressedBytes: bytes.length,
  };
}

export function verdictMetadata(manifest: BundleManifest): Record<string, unknown> {
  const v = manifest.metadata?.verdict;
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

export function checkCompressedSize(bytes: Buffer, limits: BundleLimits): void {
  if (bytes.length > limits.maxCompressedBytes) {
    throw new VerdictError('ERR_BUNDLE_TOO_LARGE', `bundle is ${bytes.length} bytes compressed (max ${limits.maxCompressedBytes})`);
  }
}

/** WebCrypto's digest runs on the libuv pool: hashing a large bundle does not block the event loop. */
export async function sha256Hex(bytes: Buffer): Promise<string> {
  return Buffer.from(await crypto.subtle.digest('SHA-256', bytes)).toString('hex');
}

const gunzipAsync = promisify(gunzip);

/** Inflates off the event loop (libuv pool), stopping at `max` output bytes (decompression-bomb safe). */
async function gunzipBounded(bytes: Buffer, max: number): Promise<Buffer> {
  try {
    return await gunzipAsync(bytes, { maxOutputLength: max });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE') {
      throw new VerdictError('ERR_BUNDLE_TOO_LARGE', `bundle expands beyond ${max} bytes`);
    }
    throw new VerdictError('ERR_BUNDLE_INVALID', `bundle is not gzip: ${(err as Error).message}`);
  }
}

function untar(tar: Buffer, maxFiles: number): Promise<Map<string, Buffer>> {
  return new Promise((resolve, reject) => {
    const files = new Map<string, Buffer>();
    const ex = extract();
    let failed = false;
    const fail = (err: VerdictError): void => {
      if (failed) return;
      failed = true;
      ex.destroy();
      reject(err);
    };
    ex.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => chunks.push(c as Buffer));
      stream.on('end', () => {
        if (failed) return;
        if (header.type === 'directory') return next();
        if (header.type !== 'file')
          return fail(new VerdictError('ERR_BUNDLE_UNSAFE_PATH', `tar entry "${header.name}" is a ${header.type}, not a file`));
        const path = safePath(header.name);
        if (path === null) return fail(new VerdictError('ERR_BUNDLE_UNSAFE_PATH', `tar entry "${header.name}" has an unsafe path`));
        if (files.has(path)) return fail(new VerdictError('ERR_BUNDLE_INVALID', `tar entry "${path}" appears twice`));
        if (files.size >= maxFiles) return fail(new VerdictError('ERR_BUNDLE_TOO_LARGE', `bundle has more than ${maxFiles} files`));
        files.set(path, Buffer.concat(chunks));
        next();
      });
      stream.resume();
    });
    ex.on('finish', () => {
      if (!failed) resolve(files);
    });
    ex.on('error', (err: Error) => fail(new VerdictError('ERR_BUNDLE_INVALID', `bundle is not a valid tar: ${err.message}`)));
    ex.end(tar);
  });
}

/** OPA writes entries as "/file"; one leading "/" means the bundle root. Anything that could escape is refused. */
export function safePath(name: string): string | null {
  let p = name.startsWith('/') ? name.slice(1) : name;
  if (p.startsWith('./')) p = p.slice(2);
  if (p === '' || p.startsWith('/') || p.includes('\\') || p.includes('\0')) return null;
  const parts = p.split('/');
  if (parts.some((s) => s === '..' || s === '.' || s === '')) return null;
  return p;
}

function parseManifest(raw: Buffer | undefined): BundleManifest {
  if (raw === undefined) return {};
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
