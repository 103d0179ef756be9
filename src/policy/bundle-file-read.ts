import { closeSync, constants, fstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import * as fsPromises from 'node:fs/promises';
import { VerdictError, type ErrorCode } from '../errors';

/** How a read failure is reported: a VerdictError on the event loop, plain data in the bundle worker. */
export type FileReadFailure = (code: ErrorCode, message: string, cause?: unknown) => unknown;

/**
 * The system calls of one bounded read. Each returns its result (the synchronous variant) or a promise of
 * it (the asynchronous one): `regularFileSteps` yields what a call returns and is handed back the result,
 * so that one function holds every check for both (a promise's rejection is thrown back in at the yield).
 */
export interface FileReadCalls<H> {
  stat(path: string): Stats | Promise<Stats>;
  open(path: string): H | Promise<H>;
  fstat(handle: H): Stats | Promise<Stats>;
  /** Into buf from the current position; the byte count. */
  read(handle: H, buf: Buffer): number | Promise<number>;
  close(handle: H): void | Promise<void>;
}

/**
 * Reads a file that must be a regular file, at most `maxBytes`, whatever `stat` says. A FIFO, a device, a
 * socket or a directory is refused with ERR_BUNDLE_FILE_TYPE before it is read: the path is stat'ed first
 * (so a device is never opened), then opened O_NONBLOCK (a FIFO cannot block the open) and the *opened*
 * descriptor is fstat'ed again (the path may have been swapped in between). The read loop stops one byte
 * past the bound, so a file that grows, or lies about its size, still costs at most `maxBytes + 1`.
 * A missing or unreadable file is ERR_BUNDLE_SOURCE.
 *
 * Self-contained (the calls and the failure constructor are handed in) so that the bundle worker runs the
 * very same function from its source text: a watched bundle file is read there, never on the event loop.
 */
export function* regularFileSteps<H>(
  calls: FileReadCalls<H>,
  path: string,
  maxBytes: number,
  what: string,
  fail: FileReadFailure,
): Generator<unknown, Buffer, unknown> {
  const CHUNK_BYTES = 1024 * 1024;
  const kind = (st: Stats): string => {
    if (st.isFIFO()) return 'FIFO';
    if (st.isCharacterDevice()) return 'character device';
    if (st.isBlockDevice()) return 'block device';
    if (st.isDirectory()) return 'directory';
    if (st.isSocket()) return 'socket';
    return 'special file';
  };
  const requireRegular = (st: Stats): void => {
    if (!st.isFile()) throw fail('ERR_BUNDLE_FILE_TYPE', `${what} ${path} is a ${kind(st)}, not a regular file`);
  };
  const tooLarge = (size: number): unknown =>
    fail('ERR_BUNDLE_TOO_LARGE', `${what} ${path} is ${size === maxBytes + 1 ? `over ${maxBytes}` : size} bytes (max ${maxBytes})`);
  const sourceError = (err: unknown): unknown => fail('ERR_BUNDLE_SOURCE', `cannot read ${what} ${path}: ${(err as Error).message}`, err);
  let pathStat: Stats;
  try {
    pathStat = (yield calls.stat(path)) as Stats;
  } catch (err) {
    throw sourceError(err);
  }
  requireRegular(pathStat);
  let handle: H;
  try {
    handle = (yield calls.open(path)) as H;
  } catch (err) {
    throw sourceError(err);
  }
  try {
    const st = (yield calls.fstat(handle)) as Stats;
    requireRegular(st);
    if (st.size > maxBytes) throw tooLarge(st.size);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const want = Math.min(CHUNK_BYTES, maxBytes + 1 - total);
      const buf = Buffer.allocUnsafe(want);
      let bytesRead: number;
      try {
        bytesRead = (yield calls.read(handle, buf)) as number;
      } catch (err) {
        throw sourceError(err);
      }
      if (bytesRead === 0) return Buffer.concat(chunks, total);
      chunks.push(bytesRead === want ? buf : buf.subarray(0, bytesRead));
      total += bytesRead;
      if (total > maxBytes) throw tooLarge(total);
    }
  } finally {
    try {
      yield calls.close(handle);
    } catch {
      // Nothing was written: a failed close loses nothing.
    }
  }
}

/**
 * regularFileSteps with fs/promises (the bounded read of the event loop and of the bundle worker, whose source
 * text holds both functions). A rejected call is thrown back into the steps, where it is reported as `fail` says.
 */
export async function readRegularFile(
  fs: typeof import('node:fs/promises'),
  flags: number,
  path: string,
  maxBytes: number,
  what: string,
  fail: FileReadFailure,
): Promise<Buffer> {
  const calls: FileReadCalls<import('node:fs/promises').FileHandle> = {
    stat: (p) => fs.stat(p),
    open: (p) => fs.open(p, flags),
    fstat: (fh) => fh.stat(),
    read: async (fh, buf) => (await fh.read(buf, 0, buf.length, null)).bytesRead,
    close: (fh) => fh.close(),
  };
  const steps = regularFileSteps(calls, path, maxBytes, what, fail);
  for (let step = steps.next(); ;) {
    if (step.done) return step.value;
    let result: unknown;
    try {
      result = await step.value;
    } catch (err) {
      step = steps.throw(err);
      continue;
    }
    step = steps.next(result);
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

/**
 * The same steps with synchronous calls, for files read once while verdict starts (the config file and the
 * files it names): a sync call that throws does so inside the steps, so they need no driver but this loop.
 */
export function readRegularFileSync(path: string, maxBytes: number, what: string, fail: FileReadFailure): Buffer {
  const calls: FileReadCalls<number> = {
    stat: (p) => statSync(p),
    open: (p) => openSync(p, REGULAR_FILE_FLAGS),
    fstat: (fd) => fstatSync(fd),
    read: (fd, buf) => readSync(fd, buf, 0, buf.length, null),
    close: (fd) => closeSync(fd),
  };
  const steps = regularFileSteps(calls, path, maxBytes, what, fail);
  let step = steps.next();
  while (!step.done) step = steps.next(step.value);
  return step.value;
}

/** Bound on a file the config names when it has no size setting of its own (keys, certificates, bundles of trust). */
export const MAX_CONFIGURED_FILE_BYTES = 1024 * 1024;

/**
 * A file the configuration names (or the config file itself), read while verdict starts, and `verdict eval`'s
 * input: a regular file of at most `maxBytes`, else ERR_CONFIG (a bad file named to start or to run a command
 * is a configuration error).
 */
export function readConfiguredFile(path: string, what: string, maxBytes = MAX_CONFIGURED_FILE_BYTES): Buffer {
  return readRegularFileSync(path, maxBytes, what, (_code, message, cause) => new VerdictError('ERR_CONFIG', message, { cause }));
}

/** True when a read failed because the file does not exist (the cause kept by ERR_BUNDLE_SOURCE). */
export function isMissingFile(err: unknown): boolean {
  return err instanceof VerdictError && (err.cause as { code?: unknown } | undefined)?.code === 'ENOENT';
}
