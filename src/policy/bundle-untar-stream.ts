/** What the streaming untar needs from zlib and tar-stream: handed in, so the function stays self-contained. */
export interface UntarLibraries {
  createGunzip: typeof import('node:zlib').createGunzip;
  extract: typeof import('tar-stream').extract;
}

/** One entry's byte stream, as tar-stream hands it out. */
type EntryStream = import('tar-stream').ExtractEvents['entry'][1];

/** The bounds the untar checks as bytes arrive (bundles.limits with defaults filled in). */
export interface UntarBounds {
  maxUncompressedBytes: number;
  maxFiles: number;
  maxFileBytes: number;
  maxPathDepth: number;
}

/** A refusal as plain data (it crosses a worker boundary; the caller makes it a VerdictError). */
export interface UntarRefusal {
  code: 'ERR_BUNDLE_INVALID' | 'ERR_BUNDLE_TOO_LARGE' | 'ERR_BUNDLE_UNSAFE_PATH';
  message: string;
}

/**
 * Inflates and untars a bundle in one streaming pass, bounded and total: every stream's 'error' is
 * handled (a truncated entry, a corrupt gzip), and every bound is checked as bytes arrive — inflated
 * total, entry count (files *and* directories), path depth, per-file size (from the header before any
 * byte is buffered, and again while streaming). Only regular files and directories are accepted; every
 * entry, directories included, goes through the path checks. Settles exactly once: with the files, each
 * in an ArrayBuffer of its own (so each can be transferred), or with an UntarRefusal.
 *
 * Self-contained on purpose — no reference to anything outside its body — because it runs in the bundle
 * worker (bundle-worker.ts) from its source text: the allocations of a 50 MB inflate (and the collections
 * they cause) happen on the worker's heap, never on the event loop's.
 */
export function untarStream(gz: Uint8Array, bounds: UntarBounds, lib: UntarLibraries): Promise<[string, Uint8Array][]> {
  /** Longest entry name accepted (a PAX header can carry any length; nothing honest needs more). */
  const MAX_PATH_CHARS = 1024;
  /** OPA writes entries as "/file"; one leading "/" means the bundle root. Anything that could escape is refused. */
  const entryPath = (name: string): string | null => {
    let p = name.startsWith('/') ? name.slice(1) : name;
    if (p.startsWith('./')) p = p.slice(2);
    if (p === '' || p.startsWith('/') || p.includes('\\') || p.includes('\0')) return null;
    const parts = p.split('/');
    if (parts.some((s) => s === '..' || s === '.' || s === '')) return null;
    return p;
  };
  /** A directory entry's path ("a/b/" → "a/b"); the root itself ("/", "./", ".") is "". */
  const dirPath = (name: string): string | null => {
    const trimmed = name.replace(/\/+$/, '');
    if (trimmed === '' || trimmed === '.' || trimmed === '/.') return '';
    return entryPath(trimmed);
  };
  return new Promise((resolve, reject) => {
    const files = new Map<string, Uint8Array>();
    const dirs = new Set<string>();
    const gunzip = lib.createGunzip({ chunkSize: 64 * 1024 });
    const ex = lib.extract();
    let inflated = 0;
    let entries = 0;
    let settled = false;
    const fail = (code: UntarRefusal['code'], message: string): void => {
      if (settled) return;
      settled = true;
      gunzip.destroy();
      ex.destroy();
      reject({ code, message } satisfies UntarRefusal);
    };
    const refusal = (code: UntarRefusal['code'], message: string): UntarRefusal => ({ code, message });
    /** The checks an entry must pass before any of its bytes is kept. */
    const check = (name: string, type: string | null | undefined, size: number): UntarRefusal | null => {
      if (++entries > bounds.maxFiles) return refusal('ERR_BUNDLE_TOO_LARGE', `bundle has more than ${bounds.maxFiles} entries`);
      if (type !== 'file' && type !== 'directory')
        return refusal('ERR_BUNDLE_UNSAFE_PATH', `tar entry "${name}" is a ${String(type)}, not a file`);
      if (name.length > MAX_PATH_CHARS)
        return refusal('ERR_BUNDLE_TOO_LARGE', `tar entry name is ${name.length} characters (max ${MAX_PATH_CHARS})`);
      const path = type === 'directory' ? dirPath(name) : entryPath(name);
      if (path === null) return refusal('ERR_BUNDLE_UNSAFE_PATH', `tar entry "${name}" has an unsafe path`);
      const depth = path === '' ? 0 : path.split('/').length;
      if (depth > bounds.maxPathDepth)
        return refusal('ERR_BUNDLE_TOO_LARGE', `tar entry "${name}" is ${depth} levels deep (max ${bounds.maxPathDepth})`);
      if (files.has(path) || dirs.has(path)) return refusal('ERR_BUNDLE_INVALID', `tar entry "${path}" appears twice`);
      if (type === 'directory') {
        dirs.add(path);
        return null;
      }
      if (!Number.isSafeInteger(size) || size < 0 || size > bounds.maxFileBytes)
        return refusal('ERR_BUNDLE_TOO_LARGE', `tar entry "${path}" declares ${size} bytes (max ${bounds.maxFileBytes})`);
      return null;
    };
    const readFile = (path: string, size: number, stream: EntryStream, next: () => void): void => {
      // Sized from the header (already bounded): chunks are copied in place, never concatenated. Not from
      // Buffer's shared pool, so the file's ArrayBuffer is this file alone (transferable).
      const buf = Buffer.allocUnsafeSlow(size);
      let offset = 0;
      stream.on('data', (data: unknown) => {
        const c = data as Buffer;
        if (settled) return;
        if (offset + c.length > size) return fail('ERR_BUNDLE_INVALID', `tar entry "${path}" exceeds its declared size`);
        c.copy(buf, offset);
        offset += c.length;
      });
      stream.on('end', () => {
        if (settled) return;
        if (offset !== size) return fail('ERR_BUNDLE_INVALID', `tar entry "${path}" holds ${offset} of ${size} bytes`);
        files.set(path, new Uint8Array(buf.buffer, buf.byteOffset, buf.length));
        next();
      });
    };
    const done = (): void => {
      if (settled) return;
      // A file that is also used as a directory ("a" and "a/b") has no meaning in a bundle.
      for (const path of [...files.keys(), ...dirs]) {
        for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) {
          if (files.has(path.slice(0, i))) return fail('ERR_BUNDLE_INVALID', `"${path.slice(0, i)}" is both a file and a directory`);
        }
      }
      settled = true;
      resolve([...files]);
    };
    gunzip.on('error', (err: Error) => fail('ERR_BUNDLE_INVALID', `bundle is not gzip: ${err.message}`));
    gunzip.on('data', (chunk: Buffer) => {
      if (settled) return;
      inflated += chunk.length;
      // Decompression-bomb bound: stop inflating the moment the output passes the limit.
      if (inflated > bounds.maxUncompressedBytes)
        return fail('ERR_BUNDLE_TOO_LARGE', `bundle expands beyond ${bounds.maxUncompressedBytes} bytes`);
      if (!ex.write(chunk)) {
        gunzip.pause();
        ex.once('drain', () => settled || gunzip.resume());
      }
    });
    gunzip.on('end', () => settled || ex.end(undefined));
    ex.on('error', (err: Error) => fail('ERR_BUNDLE_INVALID', `bundle is not a valid tar: ${err.message}`));
    ex.on('entry', (header, stream, next) => {
      // An entry whose header declares more bytes than the archive holds ends in an error on its stream.
      stream.on('error', (err: Error) => fail('ERR_BUNDLE_INVALID', `tar entry "${header.name}" is truncated: ${err.message}`));
      if (settled) return;
      const refused = check(header.name, header.type, header.size ?? 0);
      if (refused !== null) return fail(refused.code, refused.message);
      if (header.type === 'directory') {
        stream.on('end', () => settled || next());
        stream.resume();
        return;
      }
      readFile(entryPath(header.name) as string, header.size ?? 0, stream, next);
    });
    ex.on('finish', done);
    gunzip.end(gz);
  });
}
