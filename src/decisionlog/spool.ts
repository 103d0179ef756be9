import { createHash } from 'node:crypto';
import {
  closeSync,
  constants,
  fdatasync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { rename, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { VerdictError, type ErrorCode } from '../errors';
import { GENESIS_HASH } from './hash-chain';
import { fileKind, openRegular, openRegularSync } from '../regular-file';
import { jsonObject } from './log-lines';
import { SegmentIndex } from './segment-index';

const { O_APPEND, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY } = constants;
/** Spool files are opened only as what they must be: never through a symlink, never blocking (a FIFO). */
const SAFE = O_NOFOLLOW | O_NONBLOCK;
/** Scans backwards for a line end read this much at a time. */
const CHUNK = 64 * 1024;

export interface SpoolOptions {
  dir: string;
  /** Bound on the bytes held (all segments). An append beyond it is refused and counted as lost. */
  maxBytes: number;
  /** A segment is closed and a new one started past this size. */
  segmentBytes: number;
  /** The longest line (and the largest single append) verdict writes: bounds every read of a file. */
  maxLineBytes: number;
  /** A failure verdict serves on through (logged with `code`, by default ERR_DECISIONLOG_SPOOL, and counted by the caller). */
  onFault(why: string, detail: string, code?: ErrorCode): void;
  /** Spooled events that cannot be delivered (logged and counted by the caller). */
  onLost(why: string, events: number, detail: string): void;
}

/** A position in the spool: segment number and byte offset in it. */
export interface Cursor {
  segment: number;
  offset: number;
}

export interface Batch {
  lines: string[];
  bytes: number;
  next: Cursor;
}

/** seg-<number>.log, zero-padded to 12 digits: past 999999999999 the names grow to 13 digits and more. */
const SEGMENT_RE = /^seg-(\d{12,})\.log$/;
const HEAD_FILE = 'chain-head';
const SHA256_RE = /^[0-9a-f]{64}$/;

/**
 * The on-disk spool: a write-ahead log of JSON lines in numbered segment files, one cursor file per sink.
 * Appends are one write(2) each into the page cache (they survive the process being killed; fdatasync in
 * batches makes them survive power loss too); each sink reads forward from its cursor, in order, and a
 * segment is deleted once every sink has passed it. On open, a torn last line (crash mid-write) is cut off.
 */
export class Spool {
  private fd = -1;
  private segment = 0;
  private segmentSize = 0;
  private dirty = false;
  private head = GENESIS_HASH;
  /** What the current segment's first line links to, and whether chain-head holds it. */
  private anchor = GENESIS_HASH;
  private anchorSaved = true;
  private readonly segments = new SegmentIndex();
  /** Per segment, the offset past the last loss counted (each sink reads the same bytes). */
  private readonly lossesCounted = new Map<number, number>();

  constructor(private readonly options: SpoolOptions) {}

  /**
   * Opens (or creates) the spool; returns the chain head (hash of the last line ever written). Only regular
   * files are segments: anything else under a segment's name is set aside. The last segment is appended to
   * when it is a regular file that can be written, after its torn last line (a crash mid-write) is cut off;
   * otherwise it is kept for reading and a new segment is started after it.
   */
  open(): string {
    const { dir } = this.options;
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const listed = this.list();
      for (const s of listed) {
        const st = lstatSync(this.path(s), { throwIfNoEntry: false });
        if (st?.isFile()) {
          this.segments.add(s, st.size);
        } else this.setAside(s, 'not_regular', new Error(st ? `a ${fileKind(st)}, not a regular file` : 'gone'));
      }
      this.head = this.findHead();
      const last = listed.at(-1) ?? 0;
      if (!(this.segments.has(last) && this.reopen(last))) this.startSegment(last + 1);
    } catch (err) {
      if (err instanceof VerdictError) throw err;
      throw new VerdictError('ERR_DECISIONLOG_SPOOL', `cannot open spool ${dir}: ${(err as Error).message}`);
    }
    return this.head;
  }

  /**
   * Appends whole lines (each ending in "\n"); `headHash` is the hash of the last one. False when the bound
   * would be exceeded (nothing written). Throws when the write fails or is short: then nothing of it is kept.
   */
  append(text: string, headHash: string): boolean {
    const bytes = Buffer.byteLength(text);
    if (this.segments.bytes + bytes > this.options.maxBytes) return false;
    if (this.segmentSize > 0 && this.segmentSize + bytes > this.options.segmentBytes) this.rotate();
    // The current segment was set aside and no new one could be started: nothing written now would be read.
    if (!this.segments.has(this.segment)) this.rotate();
    if (!this.segments.has(this.segment)) throw new VerdictError('ERR_DECISIONLOG_SPOOL', 'no segment to append to');
    const written = writeSync(this.fd, text);
    if (written < bytes) {
      this.cutShortWrite();
      throw new VerdictError('ERR_DECISIONLOG_SPOOL', `short write to ${this.path(this.segment)}: ${written} of ${bytes} bytes`);
    }
    this.segmentSize += bytes;
    this.segments.resize(this.segment, this.segmentSize);
    this.head = headHash;
    this.dirty = true;
    return true;
  }

  /** Cuts the part of a short write off (no torn line); if that fails, appends move to a new segment. */
  private cutShortWrite(): void {
    try {
      ftruncateSync(this.fd, this.segmentSize);
    } catch (err) {
      this.options.onFault('short_write', `a short write to ${this.path(this.segment)} cannot be cut off (${(err as Error).message})`);
      this.rotate();
    }
  }

  /** fdatasync if anything was written since the last call (group commit). */
  sync(): Promise<void> {
    if (!this.dirty || this.fd < 0) return Promise.resolve();
    this.dirty = false;
    const fd = this.fd;
    return new Promise((resolve) => fdatasync(fd, () => resolve()));
  }

  get chainHead(): string {
    return this.head;
  }

  get bytes(): number {
    return this.segments.bytes;
  }

  /** Bytes from a cursor to the end (a sink's backlog). */
  backlog(c: Cursor): number {
    return this.segments.backlog(c);
  }

  /**
   * Up to maxBytes of whole lines from `from`, on across segments, so that many small segments drain in full
   * batches (the first line of a batch may be longer: up to maxLineBytes). What cannot be delivered is skipped
   * and counted, so it never holds up the lines after it: the bytes after a segment's last line end (torn by a
   * crash mid-write, or the file cut short), a line longer than maxLineBytes, a line that is not a JSON
   * object, and a segment that cannot be read at all (set aside).
   */
  async read(from: Cursor, maxBytes: number): Promise<Batch> {
    const batch: Batch = { lines: [], bytes: 0, next: this.onward(from) };
    // Skipped bytes take no room: a batch with no line yet reads on to the first line or the end.
    while (batch.lines.length === 0 || batch.bytes < maxBytes) {
      const { segment, offset } = batch.next;
      if (offset >= this.segments.size(segment)) {
        if (segment === this.segment) break;
        batch.next = this.onward(batch.next);
        continue;
      }
      try {
        if (!(await this.readSegment(batch, maxBytes))) break;
      } catch (err) {
        this.setAside(segment, 'unreadable', err);
        batch.next = this.onward(batch.next);
      }
    }
    return batch;
  }

  /** Past the end of a sealed segment (or at one no longer held): on to the next segment held, however far. */
  private onward(c: Cursor): Cursor {
    while (c.segment < this.segment && c.offset >= this.segments.size(c.segment))
      c = { segment: this.segments.after(c.segment) ?? this.segment, offset: 0 };
    return c;
  }

  /**
   * Adds to the batch the lines from batch.next to the end of its segment, as many as fit. False when the
   * next line does not fit (the batch is full).
   */
  private async readSegment(batch: Batch, maxBytes: number): Promise<boolean> {
    const { segment, offset } = batch.next;
    let rest = this.segments.size(segment) - offset;
    const fh = await openRegular(this.path(segment), O_RDONLY | SAFE);
    try {
      const first = batch.lines.length === 0;
      let want = Math.min(rest, first ? maxBytes : maxBytes - batch.bytes);
      let data = await readAt(fh, offset, want);
      if (first && data.lastIndexOf(10) < 0 && data.length === want && want < rest) {
        // The first line of a batch may be longer than the batch, up to the longest line verdict writes.
        want = Math.min(rest, Math.max(want, this.options.maxLineBytes + 1));
        data = await readAt(fh, offset, want);
      }
      if (data.length < want) rest = this.shrank(segment, offset + data.length) - offset;
      const end = data.lastIndexOf(10) + 1;
      if (end > 0) this.take(batch, data.subarray(0, end - 1));
      if (data.length === rest) {
        if (end < rest) this.skip(batch, rest - end, 'torn', `segment ${this.path(segment)} ends inside a line`);
        return true;
      }
      if (!first || end > 0) return false;
      const lineEnd = await nextLineEnd(fh, offset + data.length, offset + rest);
      this.skip(batch, lineEnd - offset, 'too_long', `a line in ${this.path(segment)} is longer than ${this.options.maxLineBytes} bytes`);
      return true;
    } finally {
      await fh.close();
    }
  }

  /**
   * Adds whole lines (`text` is them without the last newline) to the batch. A line that is not a JSON object
   * (blank, garbage, `null`, an array) is skipped and counted: it is no event, and one bad line in a sink's
   * batch (an HTTP sink's JSON array) would have the whole batch refused again and again.
   */
  private take(batch: Batch, text: Buffer): void {
    for (let start = 0; start <= text.length;) {
      const newline = text.indexOf(10, start);
      const end = newline < 0 ? text.length : newline;
      const line = text.toString('utf8', start, end);
      if (jsonObject(line) !== null) {
        batch.lines.push(line);
        advance(batch, end - start + 1);
      } else this.skip(batch, end - start + 1, 'corrupt', `a line in ${this.path(batch.next.segment)} is not a JSON object`);
      start = end + 1;
    }
  }

  /** Moves the batch past bytes that hold no deliverable event; the loss is counted once, by the first reader. */
  private skip(batch: Batch, bytes: number, why: string, detail: string): void {
    const { segment, offset } = batch.next;
    if (offset >= (this.lossesCounted.get(segment) ?? 0)) {
      this.lossesCounted.set(segment, offset + 1);
      this.options.onLost(why, 1, `${detail} (at byte ${offset})`);
    }
    advance(batch, bytes);
  }

  /** The file holds less than was spooled to it (cut short from outside): what is gone is reported. */
  private shrank(segment: number, size: number): number {
    const held = this.segments.size(segment);
    this.segments.resize(segment, size);
    this.options.onFault('truncated', `segment ${this.path(segment)} holds ${size} of the ${held} bytes spooled to it`);
    // Appends would follow a line cut in two.
    if (segment === this.segment) this.rotate();
    return size;
  }

  /**
   * Takes a segment out of the spool: renamed aside (kept for inspection, never read again) and reported
   * with the bytes it held; its events are not delivered.
   */
  private setAside(segment: number, why: string, err: unknown): void {
    const file = this.path(segment);
    const held = this.segments.size(segment);
    this.segments.remove(segment);
    this.lossesCounted.delete(segment);
    this.options.onFault(why, `segment ${file} (${held} bytes spooled) set aside: ${(err as Error).message}; ${this.moveAside(file, why)}`);
    // Appends to a segment that is no longer at its path would never be read: start a new one.
    if (this.fd >= 0 && segment === this.segment) this.rotate();
  }

  /** Renames a spool file aside (kept for inspection, never read again); says where it went. */
  private moveAside(file: string, why: string): string {
    const to = `${file}.${why}-${Date.now()}`;
    try {
      renameSync(file, to);
      return `now ${to}`;
    } catch (err) {
      return `left in place (${(err as Error).message})`;
    }
  }

  /** Deletes segments every sink has passed. A segment that cannot be deleted is only reported. */
  release(slowest: Cursor): void {
    // While the current segment is empty, only the segments before it hold the chain head: keep them until
    // chain-head does.
    if (!this.anchorSaved && this.segmentSize === 0 && !(this.anchorSaved = this.saveAnchor())) return;
    for (let s = this.segments.first(); s !== undefined && s < slowest.segment && s !== this.segment; s = this.segments.first()) {
      try {
        unlinkSync(this.path(s));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
          this.options.onFault('release', `delivered segment ${this.path(s)} cannot be deleted: ${(err as Error).message}`);
      }
      this.segments.remove(s);
      this.lossesCounted.delete(s);
    }
  }

  /**
   * The sink's saved cursor, if it names a segment held, at a line start within it. Any other cursor (none
   * yet, unreadable, or one that would skip or split events) starts the sink at the oldest segment: sending
   * events again is better than losing them.
   */
  async loadCursor(sink: string): Promise<Cursor> {
    const file = join(this.options.dir, `cursor-${sink}.json`);
    const oldest = { segment: this.segments.first() ?? this.segment, offset: 0 };
    let problem: string | null;
    try {
      const text = readSmall(file);
      if (text === null) return oldest;
      const c = JSON.parse(text) as Partial<Cursor> | null;
      problem = this.cursorProblem(c);
      if (problem === null) return c as Cursor;
    } catch (err) {
      problem = (err as Error).message;
    }
    this.options.onFault('cursor', `${file} is not used (${problem}); sink ${sink} starts again at the oldest segment held`);
    return oldest;
  }

  /** Why a cursor cannot be resumed from, or null when it can. */
  private cursorProblem(c: Partial<Cursor> | null): string | null {
    if (!Number.isSafeInteger(c?.segment) || !Number.isSafeInteger(c?.offset)) return 'not a {segment, offset} of integers';
    const { segment, offset } = c as Cursor;
    if (!this.segments.has(segment)) return `segment ${segment} is not held`;
    const size = this.segments.size(segment);
    if (offset < 0 || offset > size) return `offset ${offset} is outside segment ${segment} (${size} bytes)`;
    if (offset === 0) return null;
    const fd = openRegularSync(this.path(segment), O_RDONLY | SAFE);
    try {
      const byte = Buffer.alloc(1);
      readSync(fd, byte, 0, 1, offset - 1);
      return byte[0] === 10 ? null : `offset ${offset} is inside a line`;
    } finally {
      closeSync(fd);
    }
  }

  /** Atomic: written beside, then renamed over. */
  async saveCursor(sink: string, c: Cursor): Promise<void> {
    const file = join(this.options.dir, `cursor-${sink}.json`);
    await writeFile(`${file}.tmp`, JSON.stringify(c), { flag: O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW });
    await rename(`${file}.tmp`, file);
  }

  close(): void {
    if (this.fd < 0) return;
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = -1;
  }

  /**
   * Moves appends to a new segment. The new one is opened first: when it cannot be, appends go on into the
   * current one (past segmentBytes) rather than being lost, and no closed descriptor is ever kept.
   */
  private rotate(): void {
    const sealed = this.fd;
    try {
      this.startSegment(this.segment + 1);
    } catch (err) {
      this.options.onFault(
        'rotate',
        `segment ${this.segment + 1} cannot be started (${(err as Error).message}); appending on to the current one`,
      );
      return;
    }
    try {
      fsyncSync(sealed);
    } catch (err) {
      this.options.onFault('sync', `sealed segment ${this.path(this.segment - 1)} cannot be synced: ${(err as Error).message}`);
    } finally {
      closeSync(sealed);
    }
  }

  /** Starts segment n (a new file: nothing of the same name is ever written through). */
  private startSegment(n: number): void {
    this.fd = openSync(this.path(n), O_RDWR | O_APPEND | O_CREAT | O_EXCL | SAFE, 0o600);
    this.segment = n;
    this.segmentSize = 0;
    this.segments.add(n, 0);
    this.anchor = this.head;
    this.anchorSaved = this.saveAnchor();
  }

  /**
   * Writes chain-head: the hash the new segment's first line will link to, for when the segments before it
   * have been delivered and deleted. False (reported) when it cannot be written.
   */
  private saveAnchor(): boolean {
    const file = join(this.options.dir, HEAD_FILE);
    try {
      const fd = openSync(`${file}.tmp`, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0o600);
      try {
        writeSync(fd, this.anchor);
      } finally {
        closeSync(fd);
      }
      renameSync(`${file}.tmp`, file);
      return true;
    } catch (err) {
      this.options.onFault('chain_head', `${file} cannot be written (${(err as Error).message}); delivered segments are kept until it is`);
      return false;
    }
  }

  /** Opens the last segment to append to it, after cutting a torn last line. False: it is kept only for reading. */
  private reopen(n: number): boolean {
    const file = this.path(n);
    let fd = -1;
    try {
      fd = openRegularSync(file, O_RDWR | O_APPEND | SAFE);
      const { size } = fstatSync(fd);
      const end = lineStart(fd, size, this.options.maxLineBytes);
      if (end < 0) throw new Error(`no line ends in its last ${this.options.maxLineBytes} bytes`);
      if (end < size) {
        ftruncateSync(fd, end);
        this.options.onLost('torn', 1, `segment ${file} ended inside a line (a crash mid-write): ${size - end} bytes cut off`);
      }
      this.segments.resize(n, end);
      this.fd = fd;
      this.segment = n;
      this.segmentSize = end;
      return true;
    } catch (err) {
      if (fd >= 0) closeSync(fd);
      this.options.onFault('sealed', `segment ${file} is not appended to (${(err as Error).message}); a new segment follows it`);
      return false;
    }
  }

  /** The hash of the newest whole line in the spool, else what chain-head holds. */
  private findHead(): string {
    const limit = this.options.maxLineBytes;
    for (const s of [...this.segments.all()].reverse()) {
      const size = this.segments.size(s);
      if (size === 0) continue;
      let fd = -1;
      try {
        fd = openRegularSync(this.path(s), O_RDONLY | SAFE);
        const end = lineStart(fd, size, limit);
        if (end === 0) continue; // no whole line here
        const start = end < 0 ? -1 : lineStart(fd, end - 1, limit);
        if (start < 0) throw new Error(`no line ends within ${limit} bytes`);
        return hashRange(fd, start, end - 1);
      } catch (err) {
        return this.newChain(`the chain head cannot be read from ${this.path(s)} (${(err as Error).message})`);
      } finally {
        if (fd >= 0) closeSync(fd);
      }
    }
    let text: string | null;
    try {
      text = readSmall(join(this.options.dir, HEAD_FILE));
    } catch (err) {
      return this.newChain(`${HEAD_FILE} cannot be read (${(err as Error).message})`);
    }
    if (text === null) return GENESIS_HASH; // a new spool: the chain begins
    const head = text.trim();
    return SHA256_RE.test(head)
      ? head
      : this.newChain(`${HEAD_FILE} does not hold a sha256 hex digest (${JSON.stringify(head.slice(0, 80))})`);
  }

  /**
   * The chain head is not known: the next event links to the genesis hash, a break `decisionlog verify` reports
   * as a new chain starting there (never a made-up link).
   */
  private newChain(detail: string): string {
    this.options.onFault('chain_break', `${detail}; a new chain starts at the genesis hash`, 'ERR_DECISIONLOG_CHAIN');
    return GENESIS_HASH;
  }

  /** The segments in the directory, in numeric order; a name that is not one path() gives is set aside. */
  private list(): number[] {
    const { dir } = this.options;
    const held: number[] = [];
    for (const name of readdirSync(dir)) {
      const digits = SEGMENT_RE.exec(name)?.[1];
      if (digits === undefined) continue;
      const n = Number(digits);
      if (Number.isSafeInteger(n) && this.path(n) === join(dir, name)) held.push(n);
      else this.options.onFault('misnamed', `${name} is not a segment name verdict writes; ${this.moveAside(join(dir, name), 'misnamed')}`);
    }
    return held.sort((a, b) => a - b);
  }

  private path(segment: number): string {
    return join(this.options.dir, `seg-${String(segment).padStart(12, '0')}.log`);
  }
}

/**
 * Where the line holding byte `end` - 1 starts: just past the last "\n" before `end`, or 0 at the start of the
 * file. Looks back at most `limit` + 1 bytes (a line is at most `limit` bytes): -1 when no line starts there.
 */
function lineStart(fd: number, end: number, limit: number): number {
  const floor = Math.max(0, end - limit - 1);
  const buf = Buffer.allocUnsafe(Math.min(CHUNK, end - floor));
  for (let pos = end; pos > floor;) {
    const n = Math.min(buf.length, pos - floor);
    const got = readSync(fd, buf, 0, n, pos - n);
    const i = buf.subarray(0, got).lastIndexOf(10);
    if (i >= 0) return pos - n + i + 1;
    pos -= n;
  }
  return floor === 0 ? 0 : -1;
}

/** A small regular file's text (a cursor, the chain head), at most 4 KiB of it; null when it does not exist. */
function readSmall(file: string): string | null {
  let fd: number;
  try {
    fd = openRegularSync(file, O_RDONLY | SAFE);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    const buf = Buffer.allocUnsafe(4096);
    return buf.toString('utf8', 0, readSync(fd, buf, 0, buf.length, 0));
  } finally {
    closeSync(fd);
  }
}

/** sha256 (hex) of bytes [start, end) of fd, read CHUNK bytes at a time: the line hash of the hash chain. */
function hashRange(fd: number, start: number, end: number): string {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(CHUNK);
  for (let pos = start; pos < end;) {
    const got = readSync(fd, buf, 0, Math.min(CHUNK, end - pos), pos);
    if (got === 0) throw new Error('the file shrank while it was read');
    hash.update(buf.subarray(0, got));
    pos += got;
  }
  return hash.digest('hex');
}

/** Up to `length` bytes at `position` (fewer when the file ends first). */
async function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  const { bytesRead } = await fh.read(buf, 0, length, position);
  return buf.subarray(0, bytesRead);
}

/** The offset just past the first "\n" in [from, to), else `to`; reads CHUNK bytes at a time. */
async function nextLineEnd(fh: FileHandle, from: number, to: number): Promise<number> {
  const buf = Buffer.allocUnsafe(CHUNK);
  for (let pos = from; pos < to;) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(CHUNK, to - pos), pos);
    if (bytesRead === 0) break;
    const i = buf.subarray(0, bytesRead).indexOf(10);
    if (i >= 0) return pos + i + 1;
    pos += bytesRead;
  }
  return to;
}

/** Moves a batch's end (and its byte count) on by `bytes` in the same segment. */
function advance(batch: Batch, bytes: number): void {
  batch.bytes += bytes;
  batch.next = { segment: batch.next.segment, offset: batch.next.offset + bytes };
}
