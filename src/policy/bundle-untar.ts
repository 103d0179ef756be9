import { createGunzip } from 'node:zlib';
import { extract, type ExtractEvents, type Header } from 'tar-stream';

/** One entry's byte stream, as tar-stream hands it out. */
type EntryStream = ExtractEvents['entry'][1];
import { VerdictError } from '../errors';
import { DEFAULT_BUNDLE_LIMITS, type BundleLimits } from './bundle';

/** Longest entry name accepted (a PAX header can carry any length; nothing honest needs more). */
const MAX_PATH_CHARS = 1024;

/**
 * Inflates and untars a bundle in one streaming pass, bounded and total: every stream's 'error' is
 * handled (a truncated entry, a corrupt gzip), and every bound is checked as bytes arrive — inflated
 * total, entry count (files *and* directories), path depth, per-file size (from the header before any
 * byte is buffered, and again while streaming). Only regular files and directories are accepted; every
 * entry, directories included, goes through the path checks. The promise settles exactly once.
 */
export function untarBounded(gz: Buffer, limits: BundleLimits): Promise<Map<string, Buffer>> {
  return new Promise((resolve, reject) => {
    const run = new UntarRun(gz, { ...DEFAULT_BUNDLE_LIMITS, ...limits }, resolve, reject);
    run.start();
  });
}

class UntarRun {
  private readonly files = new Map<string, Buffer>();
  private readonly dirs = new Set<string>();
  private readonly gunzip = createGunzip({ chunkSize: 64 * 1024 });
  private readonly ex = extract();
  private inflated = 0;
  private entries = 0;
  private settled = false;

  constructor(
    private readonly gz: Buffer,
    private readonly limits: Required<BundleLimits>,
    private readonly resolve: (files: Map<string, Buffer>) => void,
    private readonly reject: (err: VerdictError) => void,
  ) {}

  start(): void {
    this.gunzip.on('error', (err: Error) => this.fail(new VerdictError('ERR_BUNDLE_INVALID', `bundle is not gzip: ${err.message}`)));
    this.gunzip.on('data', (chunk: Buffer) => this.inflate(chunk));
    this.gunzip.on('end', () => {
      if (!this.settled) this.ex.end(undefined);
    });
    this.ex.on('error', (err: Error) => this.fail(new VerdictError('ERR_BUNDLE_INVALID', `bundle is not a valid tar: ${err.message}`)));
    this.ex.on('entry', (header: Header, stream: EntryStream, next: () => void) => this.entry(header, stream, next));
    this.ex.on('finish', () => this.done());
    this.gunzip.end(this.gz);
  }

  private inflate(chunk: Buffer): void {
    if (this.settled) return;
    this.inflated += chunk.length;
    // Decompression-bomb bound: stop inflating the moment the output passes the limit.
    if (this.inflated > this.limits.maxUncompressedBytes) {
      return this.fail(new VerdictError('ERR_BUNDLE_TOO_LARGE', `bundle expands beyond ${this.limits.maxUncompressedBytes} bytes`));
    }
    // One inflated chunk per event-loop turn: the tar parser works through what it is given in one
    // (microtask) run, so feeding it a chunk at a time keeps every turn short whatever the bundle holds.
    this.gunzip.pause();
    const drained = this.ex.write(chunk);
    const resume = (): void => void setImmediate(() => this.settled || this.gunzip.resume());
    if (drained) resume();
    else this.ex.once('drain', resume);
  }

  private entry(header: Header, stream: EntryStream, next: () => void): void {
    // An entry whose header declares more bytes than the archive holds ends in an error on its stream.
    stream.on('error', (err: Error) =>
      this.fail(new VerdictError('ERR_BUNDLE_INVALID', `tar entry "${header.name}" is truncated: ${err.message}`)),
    );
    if (this.settled) return;
    const refusal = this.check(header);
    if (refusal !== null) return this.fail(refusal);
    if (header.type === 'directory') {
      stream.on('end', () => this.settled || next());
      stream.resume();
      return;
    }
    this.readFile(entryPath(header.name) as string, header.size ?? 0, stream, next);
  }

  private readFile(path: string, size: number, stream: EntryStream, next: () => void): void {
    // Sized from the header (already bounded): chunks are copied in place, never concatenated.
    const buf = Buffer.allocUnsafe(size);
    let offset = 0;
    stream.on('data', (data: unknown) => {
      const c = data as Buffer;
      if (this.settled) return;
      if (offset + c.length > size)
        return this.fail(new VerdictError('ERR_BUNDLE_INVALID', `tar entry "${path}" exceeds its declared size`));
      c.copy(buf, offset);
      offset += c.length;
    });
    stream.on('end', () => {
      if (this.settled) return;
      if (offset !== size) return this.fail(new VerdictError('ERR_BUNDLE_INVALID', `tar entry "${path}" holds ${offset} of ${size} bytes`));
      this.files.set(path, buf);
      next();
    });
  }

  /** The checks an entry must pass before any of its bytes is kept. */
  private check(header: Header): VerdictError | null {
    const { name, type } = header;
    if (++this.entries > this.limits.maxFiles)
      return new VerdictError('ERR_BUNDLE_TOO_LARGE', `bundle has more than ${this.limits.maxFiles} entries`);
    if (type !== 'file' && type !== 'directory')
      return new VerdictError('ERR_BUNDLE_UNSAFE_PATH', `tar entry "${name}" is a ${String(type)}, not a file`);
    if (name.length > MAX_PATH_CHARS)
      return new VerdictError('ERR_BUNDLE_TOO_LARGE', `tar entry name is ${name.length} characters (max ${MAX_PATH_CHARS})`);
    const path = type === 'directory' ? dirPath(name) : entryPath(name);
    if (path === null) return new VerdictError('ERR_BUNDLE_UNSAFE_PATH', `tar entry "${name}" has an unsafe path`);
    const depth = path === '' ? 0 : path.split('/').length;
    if (depth > this.limits.maxPathDepth)
      return new VerdictError('ERR_BUNDLE_TOO_LARGE', `tar entry "${name}" is ${depth} levels deep (max ${this.limits.maxPathDepth})`);
    if (this.files.has(path) || this.dirs.has(path)) return new VerdictError('ERR_BUNDLE_INVALID', `tar entry "${path}" appears twice`);
    if (type === 'directory') {
      this.dirs.add(path);
      return null;
    }
    const size = header.size ?? 0;
    if (!Number.isSafeInteger(size) || size < 0 || size > this.limits.maxFileBytes) {
      return new VerdictError('ERR_BUNDLE_TOO_LARGE', `tar entry "${path}" declares ${size} bytes (max ${this.limits.maxFileBytes})`);
    }
    return null;
  }

  private done(): void {
    if (this.settled) return;
    // A file that is also used as a directory ("a" and "a/b") has no meaning in a bundle.
    for (const path of [...this.files.keys(), ...this.dirs]) {
      for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) {
        if (this.files.has(path.slice(0, i)))
          return this.fail(new VerdictError('ERR_BUNDLE_INVALID', `"${path.slice(0, i)}" is both a file and a directory`));
      }
    }
    this.settled = true;
    this.resolve(this.files);
  }

  private fail(err: VerdictError): void {
    if (this.settled) return;
    this.settled = true;
    this.gunzip.destroy();
    this.ex.destroy();
    this.reject(err);
  }
}

/** OPA writes entries as "/file"; one leading "/" means the bundle root. Anything that could escape is refused. */
export function entryPath(name: string): string | null {
  let p = name.startsWith('/') ? name.slice(1) : name;
  if (p.startsWith('./')) p = p.slice(2);
  if (p === '' || p.startsWith('/') || p.includes('\\') || p.includes('\0')) return null;
  const parts = p.split('/');
  if (parts.some((s) => s === '..' || s === '.' || s === '')) return null;
  return p;
}

/** A directory entry's path ("a/b/" → "a/b"); the root itself ("/", "./", ".") is "". */
function dirPath(name: string): string | null {
  const trimmed = name.replace(/\/+$/, '');
  if (trimmed === '' || trimmed === '.' || trimmed === '/.') return '';
  return entryPath(trimmed);
}
