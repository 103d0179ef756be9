import { createHash } from 'node:crypto';

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
  /** 1-based line numbers whose prev_hash does not match the line before, or that do not parse. */
  broken: { line: number; why: string }[];
}

/**
 * Verifies a hash chain over JSON lines: each line's prev_hash must equal the sha256 of the line before it.
 * Editing, removing, inserting or reordering a line breaks the link after it. The first line's prev_hash is
 * the anchor (the chain continues from an earlier file or starts at GENESIS_HASH).
 */
export function verifyChain(lines: Iterable<string>, expectedAnchor?: string): ChainCheck {
  const result: ChainCheck = { ok: true, lines: 0, anchor: null, head: null, broken: [] };
  let prev: string | null = null;
  for (const line of lines) {
    if (line === '') continue;
    result.lines++;
    let prevHash: unknown;
    try {
      prevHash = (JSON.parse(line) as { prev_hash?: unknown }).prev_hash;
    } catch {
      result.broken.push({ line: result.lines, why: 'not JSON' });
      prev = lineHash(line);
      continue;
    }
    if (typeof prevHash !== 'string') result.broken.push({ line: result.lines, why: 'no prev_hash' });
    else if (prev === null) {
      result.anchor = prevHash;
      if (expectedAnchor !== undefined && prevHash !== expectedAnchor)
        result.broken.push({ line: 1, why: 'anchor differs from the expected one' });
    } else if (prevHash === GENESIS_HASH)
      // verdict starts a new chain when it cannot know the head (logged with ERR_DECISIONLOG_CHAIN, docs/decisionlog.md).
      result.broken.push({ line: result.lines, why: 'a new chain starts here (prev_hash is the genesis hash)' });
    else if (prevHash !== prev) result.broken.push({ line: result.lines, why: 'prev_hash does not match the line before' });
    prev = lineHash(line);
  }
  result.head = prev;
  result.ok = result.broken.length === 0;
  return result;
}
