import { closeSync, fstatSync, openSync, type Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

/**
 * Opens `file` with `flags` (which should hold O_NONBLOCK, so that opening a FIFO does not wait for a writer)
 * and keeps it only if the opened descriptor is a regular file: the name may have been replaced since it was
 * listed or stat'ed. The spool adds O_NOFOLLOW; the CLI readers follow a symlink the user named.
 */
export async function openRegular(file: string, flags: number): Promise<FileHandle> {
  const fh = await open(file, flags);
  const st = await fh.stat().catch(async (err: unknown) => {
    await fh.close();
    throw err;
  });
  if (st.isFile()) return fh;
  await fh.close();
  throw new Error(`a ${fileKind(st)}, not a regular file`);
}

/** openRegular with synchronous calls: the descriptor, or a throw. */
export function openRegularSync(file: string, flags: number): number {
  const fd = openSync(file, flags);
  const st = fstatSync(fd);
  if (st.isFile()) return fd;
  closeSync(fd);
  throw new Error(`a ${fileKind(st)}, not a regular file`);
}

export function fileKind(st: Stats): string {
  if (st.isDirectory()) return 'directory';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'FIFO';
  if (st.isSocket()) return 'socket';
  return 'device';
}
