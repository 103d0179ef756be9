import {
  closeSync,
  fdatasync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { open, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { VerdictError } from '../errors';
import { GENESIS_HASH, lineHash } from './hash-chain';

export interface SpoolOptions {
  dir: string;
  /** Bound on the bytes held (all segments). An append beyond it is refused and counted as lost. */
  maxBytes: number;
  /** A segment is closed and a new one started past this size. */
  segmentBytes: number;
  /** A failure verdict serves on through (logged and counted by the caller). */
  onFault(why: string, detail: string): void;
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

const SEGMENT_RE = /^seg-(\d{12})\.log$/;
const HEAD_FILE = 'chain-head';

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
  private totalBytes = 0;
  private dirty = false;
  private head = GENESIS_HASH;
  private readonly sizes = new Map<number, number>();

  constructor(private readonly options: SpoolOptions) {}

  /** Opens (or creates) the spool; returns the chain head (hash of the last line ever written). */
  open(): string {
    const { dir } = this.options;
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const segments = this.segments();
      for (const s of segments) {
        const size = statSync(this.path(s)).size;
        this.sizes.set(s, size);
        this.totalBytes += size;
      }
      this.segment = segments.at(-1) ?? 1;
      this.fd = openSync(this.path(this.segment), 'a+', 0o600);
      this.segmentSize = this.repairTail();
      this.head = this.findHead(segments);
    } catch (err) {
      if (err instanceof VerdictError) throw err;
      throw new VerdictError('ERR_DECISIONLOG_SPOOL', `cannot open spool ${dir}: ${(err as Error).message}`);
    }
    return this.head;
  }

  /**
   * Appends whole lines (each ending in "\n"); `headHash` is the hash of the last one. False when the bound
   * would be exceeded (nothing written).
   */
  append(text: string, headHash: string): boolean {
    const bytes = Buffer.byteLength(text);
    if (this.totalBytes + bytes > this.options.maxBytes) return false;
    if (this.segmentSize > 0 && this.segmentSize + bytes > this.options.segmentBytes) this.rotate();
    writeSync(this.fd, text);
    this.segmentSize += bytes;
    this.totalBytes += bytes;
    this.sizes.set(this.segment, this.segmentSize);
    this.head = headHash;
    this.dirty = true;
    return true;
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
    return this.totalBytes;
  }

  /** Bytes from a cursor to the end (a sink's backlog). */
  backlog(c: Cursor): number {
    let n = 0;
    for (const [s, size] of this.sizes) if (s > c.segment) n += size;
    return n + Math.max(0, (this.sizes.get(c.segment) ?? 0) - c.offset);
  }

  /**
   * Up to maxBytes of whole lines from `from` (at least one line, however long). A segment that cannot be
   * read is set aside and reading goes on with the next one: one bad file must not stop delivery for good.
   */
  async read(from: Cursor, maxBytes: number): Promise<Batch> {
    for (;;) {
      let c = from;
      while (c.segment < this.segment && c.offset >= (this.sizes.get(c.segment) ?? 0)) c = { segment: c.segment + 1, offset: 0 };
      const available = (this.sizes.get(c.segment) ?? 0) - c.offset;
      if (available <= 0) return { lines: [], bytes: 0, next: c };
      try {
        return await this.readLines(c, available, maxBytes);
      } catch (err) {
        this.setAside(c.segment, 'unreadable', err);
      }
    }
  }

  private async readLines(c: Cursor, available: number, maxBytes: number): Promise<Batch> {
    const fh = await open(this.path(c.segment), 'r');
    try {
      let want = Math.min(available, maxBytes);
      for (;;) {
        const buf = Buffer.allocUnsafe(want);
        const { bytesRead } = await fh.read(buf, 0, want, c.offset);
        const end = buf.lastIndexOf(10, bytesRead - 1);
        if (end >= 0) {
          const text = buf.toString('utf8', 0, end);
          return { lines: text.split('\n'), bytes: end + 1, next: { segment: c.segment, offset: c.offset + end + 1 } };
        }
        if (want >= available) return { lines: [], bytes: 0, next: c }; // a line still being written
        want = Math.min(available, want * 2);
      }
    } finally {
      await fh.close();
    }
  }

  /**
   * Takes a segment out of the spool: renamed aside (kept for inspection, never read again) and reported
   * with the bytes it held; its events are not delivered.
   */
  private setAside(segment: number, why: string, err: unknown): void {
    const file = this.path(segment);
    const held = this.sizes.get(segment) ?? 0;
    this.totalBytes -= held;
    this.sizes.delete(segment);
    let where: string;
    try {
      renameSync(file, (where = `${file}.${why}-${Date.now()}`));
    } catch (e) {
      where = `left in place (${(e as Error).message})`;
    }
    this.options.onFault(why, `segment ${file} (${held} bytes spooled) set aside: ${(err as Error).message}; now ${where}`);
    // Appends to a segment that is no longer at its path would never be read: start a new one.
    if (segment === this.segment) this.rotate();
  }

  /** Deletes segments every sink has passed. A segment that cannot be deleted is only reported. */
  release(slowest: Cursor): void {
    for (const s of [...this.sizes.keys()]) {
      if (s >= slowest.segment || s === this.segment) continue;
      try {
        unlinkSync(this.path(s));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
          this.options.onFault('release', `delivered segment ${this.path(s)} cannot be deleted: ${(err as Error).message}`);
      }
      this.totalBytes -= this.sizes.get(s) ?? 0;
      this.sizes.delete(s);
    }
  }

  async loadCursor(sink: string): Promise<Cursor> {
    try {
      const c = JSON.parse(await readFile(join(this.options.dir, `cursor-${sink}.json`), 'utf8')) as Cursor;
      if (Number.isInteger(c.segment) && Number.isInteger(c.offset)) return c;
    } catch {
      // No cursor yet: this sink starts at the oldest segment held.
    }
    return { segment: Math.min(...this.sizes.keys(), this.segment), offset: 0 };
  }

  /** Atomic: written beside, then renamed over. */
  async saveCursor(sink: string, c: Cursor): Promise<void> {
    const file = join(this.options.dir, `cursor-${sink}.json`);
    await writeFile(`${file}.tmp`, JSON.stringify(c));
    await rename(`${file}.tmp`, file);
  }

  close(): void {
    if (this.fd < 0) return;
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = -1;
  }

  private rotate(): void {
    fsyncSync(this.fd);
    closeSync(this.fd);
    // The chain head survives the closed segment being delivered and deleted.
    const head = join(this.options.dir, HEAD_FILE);
    writeFileSync(`${head}.tmp`, this.head);
    renameSync(`${head}.tmp`, head);
    this.segment++;
    this.fd = openSync(this.path(this.segment), 'a+', 0o600);
    this.segmentSize = 0;
    this.sizes.set(this.segment, 0);
  }

  /** Cuts a torn last line left by a crash mid-write; returns the segment's size. */
  private repairTail(): number {
    const data = readFileSync(this.path(this.segment));
    const end = data.lastIndexOf(10) + 1;
    if (end < data.length) {
      ftruncateSync(this.fd, end);
      this.totalBytes -= data.length - end;
    }
    this.sizes.set(this.segment, end);
    return end;
  }

  private findHead(segments: number[]): string {
    for (const s of [...segments].reverse()) {
      const data = readFileSync(this.path(s));
      const end = data.lastIndexOf(10);
      if (end <= 0) continue;
      const start = data.lastIndexOf(10, end - 1) + 1;
      return lineHash(data.subarray(start, end));
    }
    try {
      return readFileSync(join(this.options.dir, HEAD_FILE), 'utf8').trim() || GENESIS_HASH;
    } catch {
      return GENESIS_HASH;
    }
  }

  private segments(): number[] {
    return readdirSync(this.options.dir)
      .map((f) => SEGMENT_RE.exec(f)?.[1])
      .filter((s): s is string => s !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  }

  private path(segment: number): string {
    return join(this.options.dir, `seg-${String(segment).padStart(12, '0')}.log`);
  }
}
