import { constants } from 'node:fs';
import * as fsPromises from 'node:fs/promises';
import { VerdictError, type ErrorCode } from '../errors';

/** How a read failure is reported: a VerdictError on the event loop, plain data in the bundle worker. */
export type FileReadFailure = (code: ErrorCode, message: string, cause?: unknown) => unknown;

/**
 * Reads a file that must be a regular file, at most `maxBytes`, whatever `stat` says. A FIFO, a device, a
 * socket or a directory is refused with ERR_BUNDLE_FILE_TYPE before it is read: the path is stat'ed first
 * (so a device is never opened), then opened O_NONBLOCK (a FIFO cannot block the open) and the *opened*
 * descriptor is fstat'ed again (the path may have been swapped in between). The read loop stops one byte
 * past the bound, so a file that grows, or lies about its size, still costs at most `maxBytes + 1`.
 * A missing or unreadable file is ERR_BUNDLE_SOURCE.
 *
 * Self-contained (fs and the failure constructor are handed in) so that the bundle worker runs the very
 * same function from its source text: a watched bundle file is read there, never on the event loop.
 */
export async function readRegularFile(
  fs: typeof import('node:fs/promises'),
  flags: number,
  path: string,
  maxBytes: number,
  what: string,
  fail: FileReadFailure,
): Promise<Buffer> {
  const CHUNK_BYTES = 1024 * 1024;
  const kind = (st: import('node:fs').Stats): string => {
    if (st.isFIFO()) return 'FIFO';
    if (st.isCharacterDevice()) return 'character device';
    if (st.isBlockDevice()) return 'block device';
    if (st.isDirectory()) return 'directory';
    if (st.isSocket()) return 'socket';
    return 'special file';
  };
  const requireRegular = (st: import('node:fs').Stats): void => {
    if (!st.isFile()) throw fail('ERR_BUNDLE_FILE_TYPE', `${what} ${path} is a ${kind(st)}, not a regular file`);
  };
  const tooLarge = (size: number): unknown =>
    fail('ERR_BUNDLE_TOO_LARGE', `${what} ${path} is ${size === maxBytes + 1 ? `over ${maxBytes}` : size} bytes (max ${maxBytes})`);
  const sourceError = (err: unknown): unknown => fail('ERR_BUNDLE_SOURCE', `cannot read ${what} ${path}: ${(err as Error).message}`, err);
  let pathStat: import('node:fs').Stats;
  try {
    pathStat = await fs.stat(path);
  } catch (err) {
    throw sourceError(err);
  }
  requireRegular(pathStat);
  let fh: import('node:fs/promises').FileHandle;
  try {
    fh = await fs.open(path, flags);
  } catch (err) {
    throw sourceError(err);
  }
  try {
    const st = await fh.stat();
    requireRegular(st);
    if (st.size > maxBytes) throw tooLarge(st.size);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const want = Math.min(CHUNK_BYTES, maxBytes + 1 - total);
      const buf = Buffer.allocUnsafe(want);
      let bytesRead: number;
      try {
        ({ bytesRead } = await fh.read(buf, 0, want, null));
      } catch (err) {
        throw sourceError(err);
      }
      if (bytesRead === 0) return Buffer.concat(chunks, total);
      chunks.push(bytesRead === want ? buf : buf.subarray(0, bytesRead));
      total += bytesRead;
      if (total > maxBytes) throw tooLarge(total);
    }
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** open(2) flags of every bounded read: read-only, a FIFO cannot block the open, a tty is never adopted. */
export const REGULAR_FILE_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;

/** readRegularFile on the event loop, for small files (signatures, persisted metadata) and start-up reads. */
export function readRegularFileBounded(path: string, maxBytes: number, what: string): Promise<Buffer> {
  return readRegularFile(fsPromises, REGULAR_FILE_FLAGS, path, maxBytes, what, (code, message, cause) =>
    cause === undefined ? new VerdictError(code, message) : new VerdictError(code, message, { cause }),
  );
}

/** True when a read failed because the file does not exist (the cause kept by ERR_BUNDLE_SOURCE). */
export function isMissingFile(err: unknown): boolean {
  return err instanceof VerdictError && (err.cause as { code?: unknown } | undefined)?.code === 'ENOENT';
}
