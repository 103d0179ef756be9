import { constants, type Stats } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { VerdictError } from '../errors';

const CHUNK_BYTES = 1024 * 1024;

/**
 * Reads a file that must be a regular file, at most `maxBytes`, whatever `stat` says. A FIFO, a device, a
 * socket or a directory is refused with ERR_BUNDLE_FILE_TYPE before it is read: the path is stat'ed first
 * (so a device is never opened), then opened O_NONBLOCK (a FIFO cannot block the open) and the *opened*
 * descriptor is fstat'ed again (the path may have been swapped in between). The read loop stops one byte
 * past the bound, so a file that grows, or lies about its size, still costs at most `maxBytes + 1`.
 * A missing or unreadable file is ERR_BUNDLE_SOURCE.
 */
export async function readRegularFileBounded(path: string, maxBytes: number, what: string): Promise<Buffer> {
  requireRegular(await statOrSource(path, what), path, what);
  let fh: FileHandle;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    throw sourceError(path, what, err);
  }
  try {
    const st = await fh.stat();
    requireRegular(st, path, what);
    if (st.size > maxBytes) throw tooLarge(path, what, st.size, maxBytes);
    return await readAtMost(fh, maxBytes, path, what);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

async function readAtMost(fh: FileHandle, maxBytes: number, path: string, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const want = Math.min(CHUNK_BYTES, maxBytes + 1 - total);
    const buf = Buffer.allocUnsafe(want);
    let bytesRead: number;
    try {
      ({ bytesRead } = await fh.read(buf, 0, want, null));
    } catch (err) {
      throw sourceError(path, what, err);
    }
    if (bytesRead === 0) return Buffer.concat(chunks, total);
    chunks.push(bytesRead === want ? buf : buf.subarray(0, bytesRead));
    total += bytesRead;
    if (total > maxBytes) throw tooLarge(path, what, total, maxBytes);
  }
}

async function statOrSource(path: string, what: string): Promise<Stats> {
  try {
    return await stat(path);
  } catch (err) {
    throw sourceError(path, what, err);
  }
}

function requireRegular(st: Stats, path: string, what: string): void {
  if (st.isFile()) return;
  throw new VerdictError('ERR_BUNDLE_FILE_TYPE', `${what} ${path} is a ${fileKind(st)}, not a regular file`);
}

function fileKind(st: Stats): string {
  if (st.isFIFO()) return 'FIFO';
  if (st.isCharacterDevice()) return 'character device';
  if (st.isBlockDevice()) return 'block device';
  if (st.isDirectory()) return 'directory';
  if (st.isSocket()) return 'socket';
  return 'special file';
}

function tooLarge(path: string, what: string, size: number, maxBytes: number): VerdictError {
  return new VerdictError(
    'ERR_BUNDLE_TOO_LARGE',
    `${what} ${path} is ${size === maxBytes + 1 ? `over ${maxBytes}` : size} bytes (max ${maxBytes})`,
  );
}

function sourceError(path: string, what: string, err: unknown): VerdictError {
  return new VerdictError('ERR_BUNDLE_SOURCE', `cannot read ${what} ${path}: ${(err as Error).message}`, { cause: err });
}

/** True when a read failed because the file does not exist (the cause kept by ERR_BUNDLE_SOURCE). */
export function isMissingFile(err: unknown): boolean {
  return err instanceof VerdictError && (err.cause as { code?: unknown } | undefined)?.code === 'ENOENT';
}
