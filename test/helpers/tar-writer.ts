import { gzipSync } from 'node:zlib';

/**
 * A minimal ustar writer (POSIX.1-1988 ustar header, 512-byte blocks) for generating hostile bundles at
 * test time: unlike an honest packer it writes whatever it is told — a declared size larger than the body,
 * device and FIFO entries, traversal names, duplicate names — so the reader's refusals can be shown.
 */
export type TarType = 'file' | 'link' | 'symlink' | 'char' | 'block' | 'directory' | 'fifo';

const TYPE_FLAG: Record<TarType, string> = { file: '0', link: '1', symlink: '2', char: '3', block: '4', directory: '5', fifo: '6' };

export interface TarEntry {
  name: string;
  type?: TarType;
  body?: Buffer | string;
  /** Size written in the header; defaults to the body's length (set it larger to make a lying entry). */
  declaredSize?: number;
  linkname?: string;
}

const BLOCK = 512;

export function tarHeader(entry: TarEntry): Buffer {
  const h = Buffer.alloc(BLOCK);
  const body = toBuffer(entry.body);
  const name = Buffer.from(entry.name);
  // Names over 100 bytes go in the ustar prefix field (split at a "/"), as tar does.
  if (name.length > 100) {
    const cut = entry.name.lastIndexOf('/', 155);
    h.write(entry.name.slice(cut + 1), 0, 100);
    h.write(entry.name.slice(0, cut), 345, 155);
  } else name.copy(h, 0);
  octal(h, 100, 8, entry.type === 'directory' ? 0o755 : 0o644);
  octal(h, 108, 8, 0);
  octal(h, 116, 8, 0);
  octal(h, 124, 12, entry.declaredSize ?? body.length);
  octal(h, 136, 12, 0);
  h.write(TYPE_FLAG[entry.type ?? 'file'], 156, 1);
  if (entry.linkname !== undefined) h.write(entry.linkname, 157, 100);
  h.write('ustar\u000000', 257, 8, 'latin1');
  h.fill(' ', 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 8, 'latin1');
  return h;
}

/** The tar stream: each header, its body padded to a block, then (unless `truncate`) the two end blocks. */
export function tarBytes(entries: TarEntry[], options: { end?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const body = toBuffer(e.body);
    parts.push(tarHeader(e), body, Buffer.alloc((BLOCK - (body.length % BLOCK)) % BLOCK));
  }
  if (options.end ?? true) parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}

export function tarGz(entries: TarEntry[], options: { end?: boolean } = {}): Buffer {
  return gzipSync(tarBytes(entries, options));
}

function octal(h: Buffer, offset: number, width: number, value: number): void {
  h.write(`${value.toString(8).padStart(width - 1, '0')}\u0000`, offset, width, 'latin1');
}

function toBuffer(body: Buffer | string | undefined): Buffer {
  if (body === undefined) return Buffer.alloc(0);
  return typeof body === 'string' ? Buffer.from(body) : body;
}
