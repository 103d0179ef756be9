import { execFileSync } from 'node:child_process';
import { constants, openSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A real pipe whose two ends the test holds: a FIFO at `dir/name` (node has no mkfifo(3): coreutils makes
 * it), both ends opened non-blocking. Closing `readEnd` leaves a writer with no reader (EPIPE); holding it
 * without reading gives a reader that never reads (the 64 KiB pipe fills: EAGAIN). The caller closes both.
 */
export function fifo(dir: string, name: string): { readEnd: number; writeEnd: number } {
  const path = join(dir, name);
  execFileSync('mkfifo', [path]);
  const readEnd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  return { readEnd, writeEnd: openSync(path, constants.O_WRONLY | constants.O_NONBLOCK) };
}
