import { createHash } from 'node:crypto';
import { jsonObject, logLines } from './log-lines';

/** The prev_hash of the first event ever written by a spool. */
export const GENESIS_HASH = '0'.repeat(64);

/** sha256 (hex) of one log line as written, without its newline: what the next event's prev_hash holds. */
export function lineHash(line: string | Buffer): string {
  return createHash('sha256').update(line).digest('hex');
}

export interface ChainCheck {
  ok: boolean;
  lines: number;
  /** prev_hash of the first line (where this file joins the chain). */
  anchor: string | null;
  /** Hash of the last line (compare with a later file's anchor, or a recorded head). */
  head: string | null;
  /** 1-based line numbers whose prev_hash does not match the line before, or that do not parse (the first MAX_BROKEN). */
  broken: { line: number; why: string }[];
  /** How many lines are broken (`broken` lists at most MAX_BROKEN of them: the report stays bounded). */
  brokenTotal: number;
}

const MAX_BROKEN = 1000;

/**
 * Verifies a hash chain over JSON lines, one line at a time: each line's prev_hash must equal the sha256 of
 * the line before it. Editing, removing, inserting or reordering a line breaks the link after it. The first
 * line's prev_hash is the anchor (the chain continues from an earlier file or starts at GENESIS_HASH).
 * Blank lines are not counted.
 */
export class ChainVerifier {
  private readonly result: ChainCheck = { ok: true, lines: 0, anchor: null, head: null, broken: [], brokenTotal: 0 };
  private prev: string | null = null;
  /** The line before could not be hashed (too long to read): the next link cannot be checked. */
  private prevUnknown = false;

  constructor(private readonly expectedAnchor?: string) {}

  /** The next line; null for one too long to read (reported, not hashed). */
  push(line: string | null): void {
    if (line === '') return;
    const n = ++this.result.lines;
    const prev = this.prev;
    const linkable = !this.prevUnknown;
    this.prev = line === null ? null : lineHash(line);
    this.prevUnknown = line === null;
    if (line === null) return this.break(n, 'too long to read: not verified');
    const event = jsonObject(line);
    if (event === null) return this.break(n, 'not a JSON object');
    const prevHash = event.prev_hash;
    if (typeof prevHash !== 'string') return this.break(n, 'no prev_hash');
    if (!linkable) return; // the line before was not read: this link cannot be checked
    if (prev === null) {
      this.result.anchor = prevHash;
      if (this.expectedAnchor !== undefined && prevHash !== this.expectedAnchor) this.break(1, 'anchor differs from the expected one');
    }
    // verdict starts a new chain when it cannot know the head (logged with ERR_DECISIONLOG_CHAIN, docs/decisionlog.md).
    else if (prevHash === GENESIS_HASH) this.break(n, 'a new chain starts here (prev_hash is the genesis hash)');
    else if (prevHash !== prev) this.break(n, 'prev_hash does not match the line before');
  }

  check(): ChainCheck {
    return { ...this.result, head: this.prev, ok: this.result.brokenTotal === 0 };
  }

  private break(line: number, why: string): void {
    this.result.brokenTotal++;
    if (this.result.broken.length < MAX_BROKEN) this.result.broken.push({ line, why });
  }
}

export function verifyChain(lines: Iterable<string>, expectedAnchor?: string): ChainCheck {
  const verifier = new ChainVerifier(expectedAnchor);
  for (const line of lines) verifier.push(line);
  return verifier.check();
}

/** verifyChain over files read in order (rotated ones oldest first), streamed: memory bounded by one line. */
export async function verifyLogFiles(files: readonly string[], expectedAnchor?: string): Promise<ChainCheck> {
  const verifier = new ChainVerifier(expectedAnchor);
  for (const file of files) for await (const { text } of logLines(file)) verifier.push(text);
  return verifier.check();
}
