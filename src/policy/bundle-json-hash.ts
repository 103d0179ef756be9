import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import { VerdictError } from '../errors';

/**
 * OPA's signature hash of a structured bundle file (data.json, .manifest): the JSON is re-encoded
 * with object keys sorted (by bytes, as Go sorts strings), no whitespace, numbers kept as written and
 * strings escaped as Go's encoding/json does with HTML escaping off — so the digest does not depend on
 * formatting. A small parser is needed because JSON.parse would round numbers (1.50 → 1.5).
 */
export function hashStructuredJSON(text: Uint8Array, algorithm: 'sha256' | 'sha384' | 'sha512'): string {
  const h = createHash(algorithm);
  try {
    canonicalJSONWrite(text, (chunk) => h.update(chunk), isUtf8);
  } catch (err) {
    throw new VerdictError('ERR_BUNDLE_INVALID', (err as Error).message);
  }
  return h.digest('hex');
}

/**
 * Writes the canonical form of the JSON in `input` to `sink`, in chunks (each valid only during the call:
 * the sink must consume or copy it, as a hash's update does). Works on the bytes, not on a JS string: the
 * output is written into one buffer as the input is scanned (whitespace dropped, numbers and plain strings
 * copied as they are), and an object whose keys are out of order has its members' bytes reordered in place
 * when it closes. So a 50 MB data.json costs a few buffers outside the JS heap, not millions of strings on
 * it (whose collection, on V8's helper threads at the event loop's priority, was a refusal's cost beside
 * the parse itself). Memory: the output buffer (at most twice the input: a raw U+2028 becomes "\u2028"),
 * four ints per member of the objects still open, and a scratch buffer as large as the largest reordered
 * object. Output bytes are flushed to the sink whenever no object is open.
 *
 * Invalid UTF-8 is decoded with U+FFFD replacements first (as a UTF-8 decode of the whole file would).
 * A string with a lone surrogate escape ("\ud800") is refused: encoding/json would decode it to U+FFFD,
 * which a re-encoding cannot reproduce faithfully, so its signed hash is in doubt. Throws a plain Error on
 * malformed input (the callers make it ERR_BUNDLE_INVALID). Self-contained on purpose — no reference to
 * anything outside its body but globals (isUtf8 is handed in) — so its source also runs in the bundle
 * worker (bundle-worker.ts) as the very same code.
 */
export function canonicalJSONWrite(input: Uint8Array, sink: (chunk: Uint8Array) => void, isUtf8: (b: Uint8Array) => boolean): void {
  const MAX_DEPTH = 512;
  /** Output flushed to the sink once this much is buffered and no object is open. */
  const FLUSH_BYTES = 1 << 20;
  let b = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (!isUtf8(b)) b = Buffer.from(b.toString('utf8'), 'utf8');
  const n = b.length;
  let pos = 0;
  // The fast paths copy at most what they consume, so the output keeps within the input's length plus what
  // the slow paths added (checked there).
  let out = Buffer.allocUnsafeSlow(n + 16);
  let o = 0;
  /** Members of the open objects, four ints each: key start, key end, member end (output offsets), key flag. */
  let mem = new Int32Array(1024);
  let memTop = 0;
  let openObjects = 0;
  let scratch = Buffer.allocUnsafeSlow(0);
  let order = new Int32Array(64);
  const fail = (why: string): never => {
    throw new Error(`structured bundle file is not valid JSON (${why} at ${pos})`);
  };
  const at = (p: number): number => (p < n ? (b[p] as number) : -1);
  const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
  const isHex = (c: number): boolean => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
  const ws = (): void => {
    for (;;) {
      const c = at(pos);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return;
      pos++;
    }
  };
  /** Room for `k` more bytes now and for the rest of the input copied as it is. */
  const reserve = (k: number): void => {
    const need = o + k + (n - pos) + 16;
    if (need <= out.length) return;
    const bigger = Buffer.allocUnsafeSlow(Math.max(need, out.length * 2));
    out.copy(bigger, 0, 0, o);
    out = bigger;
  };
  /** encoding/json's string form (SetEscapeHTML(false)): like JSON.stringify, plus U+2028/U+2029 escaped. */
  const goString = (v: string): string =>
    JSON.stringify(v)
      .replace(/\u2028/g, '\\u2028')
      .replace(/\u2029/g, '\\u2029');
  /**
   * A string with an escape or a raw U+2028/U+2029, from its opening quote at `s0`: validated, decoded and
   * re-encoded at `o0`. Returns true (the key flag: its bytes are not its decoded text).
   */
  const slowString = (s0: number, o0: number): boolean => {
    pos = s0 + 1;
    for (;;) {
      const c = at(pos);
      if (c === 0x22) break;
      if (c < 0x20) fail('bad string'); // also the end of the input (-1)
      if (c !== 0x5c) {
        pos++;
        continue;
      }
      const e = at(pos + 1);
      if (e === 0x22 || e === 0x5c || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) pos += 2;
      else if (e === 0x75 && isHex(at(pos + 2)) && isHex(at(pos + 3)) && isHex(at(pos + 4)) && isHex(at(pos + 5))) pos += 6;
      else fail('bad string');
    }
    pos++;
    const decoded = JSON.parse(b.toString('utf8', s0, pos)) as string;
    if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(decoded)) fail('lone surrogate escape');
    const encoded = goString(decoded);
    o = o0;
    reserve(Buffer.byteLength(encoded, 'utf8'));
    o += out.write(encoded, o, 'utf8');
    return true;
  };
  /** A string at `pos` (its opening quote) copied to the output; true when it took the slow path. */
  const string = (): boolean => {
    const s0 = pos;
    const o0 = o;
    out[o++] = 0x22;
    pos++;
    for (;;) {
      const c = at(pos);
      if (c === 0x22) {
        pos++;
        out[o++] = 0x22;
        return false;
      }
      if (c < 0x20) fail('bad string');
      if (c === 0x5c || (c === 0xe2 && at(pos + 1) === 0x80 && (at(pos + 2) === 0xa8 || at(pos + 2) === 0xa9))) return slowString(s0, o0);
      out[o++] = c;
      pos++;
    }
  };
  /** -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, longest match, copied as written. */
  const number = (): void => {
    const start = pos;
    if (at(pos) === 0x2d) pos++;
    const c = at(pos);
    if (c === 0x30) pos++;
    else if (c >= 0x31 && c <= 0x39) {
      pos++;
      while (isDigit(at(pos))) pos++;
    } else {
      pos = start;
      fail('unexpected character');
    }
    if (at(pos) === 0x2e && isDigit(at(pos + 1))) {
      pos += 2;
      while (isDigit(at(pos))) pos++;
    }
    const e = at(pos);
    if (e === 0x65 || e === 0x45) {
      let p = pos + 1;
      if (at(p) === 0x2b || at(p) === 0x2d) p++;
      if (isDigit(at(p))) {
        p++;
        while (isDigit(at(p))) p++;
        pos = p;
      }
    }
    o += copyBytes(b, start, pos, out, o);
  };
  const literal = (word: string): boolean => {
    for (let i = 0; i < word.length; i++) if (at(pos + i) !== word.charCodeAt(i)) return false;
    for (let i = 0; i < word.length; i++) out[o++] = word.charCodeAt(i);
    pos += word.length;
    return true;
  };
  const value = (depth: number): void => {
    if (depth > MAX_DEPTH) fail('nesting too deep');
    ws();
    const c = at(pos);
    if (c === 0x7b) return object(depth);
    if (c === 0x5b) return array(depth);
    if (c === 0x22) return void string();
    if (literal('true') || literal('false') || literal('null')) return;
    number();
  };
  const array = (depth: number): void => {
    pos++;
    out[o++] = 0x5b;
    ws();
    if (at(pos) === 0x5d) {
      pos++;
      out[o++] = 0x5d;
      return;
    }
    for (;;) {
      value(depth + 1);
      ws();
      const c = at(pos++);
      if (c === 0x5d) break;
      if (c !== 0x2c) fail('expected "," or "]"');
      if (openObjects === 0 && o >= FLUSH_BYTES) {
        sink(out.subarray(0, o));
        o = 0;
      }
      out[o++] = 0x2c;
    }
    out[o++] = 0x5d;
  };
  const object = (depth: number): void => {
    pos++;
    out[o++] = 0x7b;
    ws();
    if (at(pos) === 0x7d) {
      pos++;
      out[o++] = 0x7d;
      return;
    }
    const base = memTop;
    openObjects++;
    for (;;) {
      ws();
      if (at(pos) !== 0x22) fail('expected a key');
      const keyStart = o;
      const flag = string() ? 1 : 0;
      const keyEnd = o;
      ws();
      if (at(pos++) !== 0x3a) fail('expected ":"');
      out[o++] = 0x3a;
      value(depth + 1);
      if (memTop + 4 > mem.length) {
        const bigger = new Int32Array(mem.length * 2);
        bigger.set(mem);
        mem = bigger;
      }
      mem[memTop++] = keyStart;
      mem[memTop++] = keyEnd;
      mem[memTop++] = o;
      mem[memTop++] = flag;
      ws();
      const c = at(pos++);
      if (c === 0x7d) break;
      if (c !== 0x2c) fail('expected "," or "}"');
      out[o++] = 0x2c;
    }
    arrange(base, memTop);
    memTop = base;
    openObjects--;
    out[o++] = 0x7d;
  };
  /** Byte order of two ranges (Go's string order, on UTF-8). */
  const compareBytes = (x: Buffer, xs: number, xe: number, y: Buffer, ys: number, ye: number): number => {
    const len = Math.min(xe - xs, ye - ys);
    for (let i = 0; i < len; i++) {
      const d = (x[xs + i] as number) - (y[ys + i] as number);
      if (d !== 0) return d;
    }
    return xe - xs - (ye - ys);
  };
  // The object being arranged: its first record, and its keys' decoded UTF-8 when any was re-encoded
  // (outside arrange() so that no closure is made per object: a 50 MB file has a million of them).
  let arrBase = 0;
  let decoded: (Buffer | null)[] | null = null;
  /** Byte order of the keys of members i and j: the output bytes between the quotes, or the decoded text. */
  const keyOrder = (i: number, j: number): number => {
    const ri = arrBase + 4 * i;
    const rj = arrBase + 4 * j;
    const di = decoded === null ? null : decoded[i];
    const dj = decoded === null ? null : decoded[j];
    return compareBytes(
      di ?? out,
      di ? 0 : (mem[ri] as number) + 1,
      di ? di.length : (mem[ri + 1] as number) - 1,
      dj ?? out,
      dj ? 0 : (mem[rj] as number) + 1,
      dj ? dj.length : (mem[rj + 1] as number) - 1,
    );
  };
  /** By key, then input order. */
  const byKey = (i: number, j: number): number => keyOrder(i, j) || i - j;
  /** Copies src[from, to) to dst at `at`; short runs by hand (Buffer#copy's call costs more than a few bytes). */
  const copyBytes = (src: Buffer, from: number, to: number, dst: Buffer, at: number): number => {
    if (to - from > 512) return src.copy(dst, at, from, to);
    for (let i = from; i < to; i++) dst[at++] = src[i] as number;
    return to - from;
  };
  /**
   * Sorts the members of the object that just closed (records base..top) by key, keeping the last of
   * duplicate keys (as Go's decoder does), and rewrites their bytes in that order.
   */
  const arrange = (base: number, top: number): void => {
    const count = (top - base) / 4;
    if (count < 2) return;
    arrBase = base;
    decoded = null;
    for (let i = 0; i < count; i++) {
      if (mem[base + 4 * i + 3] === 0) continue;
      decoded ??= new Array<Buffer | null>(count).fill(null);
      const r = base + 4 * i;
      decoded[i] = Buffer.from(JSON.parse(out.toString('utf8', mem[r] as number, mem[r + 1] as number)) as string, 'utf8');
    }
    // Strictly increasing keys (the common case): sorted and no duplicates, nothing to move.
    let sorted = true;
    for (let i = 1; i < count && sorted; i++) sorted = keyOrder(i - 1, i) < 0;
    if (sorted) return;
    if (order.length < count) order = new Int32Array(count * 2);
    for (let i = 0; i < count; i++) order[i] = i;
    if (count <= 16) {
      for (let i = 1; i < count; i++) {
        const x = order[i] as number;
        let j = i - 1;
        while (j >= 0 && byKey(order[j] as number, x) > 0) {
          order[j + 1] = order[j] as number;
          j--;
        }
        order[j + 1] = x;
      }
    } else {
      order.subarray(0, count).sort(byKey);
    }
    // Of equal keys (adjacent now, in input order) only the last is kept; decided before any byte moves.
    for (let k = 0; k + 1 < count; k++) if (keyOrder(order[k] as number, order[k + 1] as number) === 0) order[k] = -1;
    const regionStart = mem[base] as number;
    const regionEnd = mem[top - 2] as number;
    if (scratch.length < regionEnd - regionStart) scratch = Buffer.allocUnsafeSlow(Math.max(4096, regionEnd - regionStart));
    copyBytes(out, regionStart, regionEnd, scratch, 0);
    o = regionStart;
    let first = true;
    for (let k = 0; k < count; k++) {
      const i = order[k] as number;
      if (i < 0) continue;
      if (!first) out[o++] = 0x2c;
      first = false;
      const r = base + 4 * i;
      o += copyBytes(scratch, (mem[r] as number) - regionStart, (mem[r + 2] as number) - regionStart, out, o);
    }
    decoded = null;
  };
  value(0);
  ws();
  if (pos !== n) fail('trailing characters');
  if (o > 0) sink(out.subarray(0, o));
}
