import { constants } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { VerdictError } from '../errors';
import { openRegular } from '../regular-file';

/**
 * The longest line the decision-log tools read (decisionLog.maxQueueBytes' default bounds every line verdict
 * writes). A longer one is never held whole: it is skipped to its end and reported by its number.
 */
export const MAX_LINE_BYTES = 16 * 1024 * 1024;
const CHUNK = 64 * 1024;

export interface LogLine {
  /** 1-based, counting every line of the file. */
  number: number;
  /** The line without its "\n"; null when it is longer than the bound (skipped, not read). */
  text: string | null;
}

/**
 * The lines of a decision-log file (as the file sink writes it), streamed: memory is bounded by
 * `maxLineBytes` whatever the file holds. Only a regular file is read: a directory, FIFO or device (or a file
 * that cannot be opened or read) is refused with ERR_DECISIONLOG_FILE, never waited on or read for ever.
 */
export async function* logLines(file: string, maxLineBytes = MAX_LINE_BYTES): AsyncGenerator<LogLine> {
  const fh = await openLog(file);
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    let parts: Buffer[] = [];
    let held = 0;
    let tooLong = false;
    let number = 0;
    const add = (piece: Buffer): void => {
      if (tooLong || piece.length === 0) return;
      if (held + piece.length > maxLineBytes) {
        tooLong = true;
        parts = [];
        return;
      }
      parts.push(Buffer.from(piece)); // buf is reused for the next chunk
      held += piece.length;
    };
    const take = (): LogLine => {
      const line = { number: ++number, text: tooLong ? null : Buffer.concat(parts, held).toString('utf8') };
      parts = [];
      held = 0;
      tooLong = false;
      return line;
    };
    for (;;) {
      const got = await readChunk(fh, buf, file);
      if (got === 0) break;
      for (let start = 0; start < got;) {
        const newline = buf.indexOf(10, start);
        if (newline < 0 || newline >= got) {
          add(buf.subarray(start, got));
          break;
        }
        add(buf.subarray(start, newline));
        yield take();
        start = newline + 1;
      }
    }
    if (held > 0 || tooLong) yield take();
  } finally {
    await fh.close();
  }
}

/** A line's event: a JSON object, else null (blank, garbage, `null`, an array, a bare value). */
export function jsonObject(text: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** A field of a logged event as text: the file is read as found, so a field of another type is `otherwise`. */
export function stringOr(v: unknown, otherwise: string): string {
  return typeof v === 'string' ? v : otherwise;
}

/** How many lines were not events, and the first of their numbers (a report stays small however bad the file). */
export interface Malformed {
  malformed: number;
  malformedLines: number[];
}

const MAX_MALFORMED_LINES = 100;

export function countMalformed(report: Malformed, line: number): void {
  report.malformed++;
  if (report.malformedLines.length < MAX_MALFORMED_LINES) report.malformedLines.push(line);
}

/** The report line naming the malformed lines, if any. */
export function malformedNote(r: Malformed): string[] {
  if (r.malformed === 0) return [];
  return [`note: lines that are not events (skipped): ${r.malformedLines.join(', ')}${r.malformed > r.malformedLines.length ? ', …' : ''}`];
}

async function openLog(file: string): Promise<FileHandle> {
  try {
    return await openRegular(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw new VerdictError('ERR_DECISIONLOG_FILE', `${file}: ${(err as Error).message}`);
  }
}

async function readChunk(fh: FileHandle, buf: Buffer, file: string): Promise<number> {
  try {
    return (await fh.read(buf, 0, buf.length, null)).bytesRead;
  } catch (err) {
    throw new VerdictError('ERR_DECISIONLOG_FILE', `${file}: ${(err as Error).message}`);
  }
}
