import { isUtf8 } from 'node:buffer';
import { VerdictError } from '../errors';

/** Protobuf wire types (protobuf encoding spec, "Message Structure"). */
export const WIRE = { VARINT: 0, I64: 1, LEN: 2, SGROUP: 3, EGROUP: 4, I32: 5 } as const;

/**
 * Buffer's own slice decoders: what `toString(encoding, start, end)` calls after re-checking its arguments
 * (a quarter of the decode time in a profile). Every call here is bounded by lengthDelimited first.
 */
type SliceableBuffer = Buffer & { utf8Slice(start: number, end: number): string; latin1Slice(start: number, end: number): string };

/**
 * Map keys seen before (header names above all), in a fixed table by a hash of their bytes. A map key is
 * stored into an object as a property name, and a property name that is a fresh string is looked up in
 * V8's string table on every store (a string made and hashed per header, per Check): a key met before is
 * given back as the same string, found by comparing bytes. Only ASCII keys of at most KEY_MAX_BYTES; a slot
 * holds its own copy (never a substring of a message, which would keep the message alive); a collision
 * replaces the slot, so the table's size is fixed whatever the input.
 */
const KEY_SLOTS = 256;
const KEY_MAX_BYTES = 64;
const keyBytes: (Buffer | undefined)[] = new Array<Buffer | undefined>(KEY_SLOTS).fill(undefined);
const keyStrings: string[] = new Array<string>(KEY_SLOTS).fill('');

/** Largest field number the encoding allows (2^29 - 1). */
const MAX_FIELD_NUMBER = 0x1fffffff;
const TWO_32 = 4294967296;

/**
 * A bounded cursor over protobuf wire bytes. Every read checks the end first, so truncated input is
 * refused (ERR_REQUEST_MALFORMED) instead of read past; nothing here allocates except string/bytes output.
 * A varint is read as two 32-bit halves (lo, hi) so 64-bit values stay exact without BigInt on the fast path.
 */
export class ProtoWireReader {
  pos: number;
  /** Low and high 32 bits of the last varint read (unsigned). */
  lo = 0;
  hi = 0;
  /**
   * The whole buffer as latin1 (one char per byte), made on the first string read: an ASCII field is then a
   * `substring` of it, a JS builtin, instead of one native slice call per field (half the string cost).
   */
  private latin1: string | undefined;

  constructor(
    readonly buf: Buffer,
    start: number,
    public end: number,
  ) {
    this.pos = start;
  }

  /** Reads one varint into lo/hi. Go's protowire refuses an 11th byte and a 10th byte over 1; so does this. */
  varint(): void {
    const { buf, end } = this;
    const first = buf[this.pos];
    if (first !== undefined && first < 0x80 && this.pos < end) {
      this.pos++;
      this.lo = first;
      this.hi = 0;
      return;
    }
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= end) throw malformed('truncated varint');
      const b = buf[this.pos++] as number;
      if (i < 4) lo |= (b & 0x7f) << (7 * i);
      else if (i === 4) {
        lo |= (b & 0x0f) << 28;
        hi = (b & 0x7f) >> 4;
      } else if (i < 9) hi |= (b & 0x7f) << (7 * i - 32);
      else {
        if (b > 1) throw malformed('varint overflows 64 bits');
        hi |= b << 31;
      }
      if (b < 0x80) {
        this.lo = lo >>> 0;
        this.hi = hi >>> 0;
        return;
      }
    }
    throw malformed('varint longer than 10 bytes');
  }

  /** Wire type of the last tag read. */
  wireType = 0;

  /** A tag: returns the field number and leaves the wire type in `wireType` (no allocation per field). */
  tag(): number {
    const b = this.buf[this.pos];
    // One-byte tags (fields 1–15) are nearly all of a CheckRequest.
    if (b !== undefined && b < 0x80 && this.pos < this.end) {
      this.pos++;
      if (b >>> 3 === 0) throw malformed('invalid field number 0');
      this.wireType = b & 7;
      return b >>> 3;
    }
    this.varint();
    const field = this.hi === 0 ? this.lo >>> 3 : MAX_FIELD_NUMBER + 1;
    if (field === 0 || field > MAX_FIELD_NUMBER) throw malformed(`invalid field number ${field}`);
    this.wireType = this.lo & 7;
    return field;
  }

  /** Narrows the reader to a length-delimited payload ending at `end`; returns the outer end to restore. */
  enter(end: number): number {
    const outer = this.end;
    this.end = end;
    return outer;
  }

  /** Leaves a payload: the cursor must be at its end (every read was bounded by it). */
  leave(outer: number): void {
    this.pos = this.end;
    this.end = outer;
  }

  /** A length prefix, checked against the bytes left. Returns the end offset of the payload. */
  lengthDelimited(): number {
    this.varint();
    if (this.hi !== 0 || this.lo > this.end - this.pos) throw malformed('length-delimited field runs past its end');
    return this.pos + this.lo;
  }

  uint32(): number {
    this.varint();
    return this.lo;
  }

  int32(): number {
    this.varint();
    return this.lo | 0;
  }

  bool(): boolean {
    this.varint();
    return this.lo !== 0 || this.hi !== 0;
  }

  /** uint64 as a double when exact, else as its decimal text (the caller wraps it). */
  uint64(): number | string {
    this.varint();
    if (this.hi < 0x200000) return this.hi * TWO_32 + this.lo;
    return ((BigInt(this.hi) << 32n) | BigInt(this.lo)).toString();
  }

  /** int64 (two's complement) as a double when exact, else as its decimal text. */
  int64(): number | string {
    this.varint();
    const value = (this.hi | 0) * TWO_32 + this.lo;
    if (Number.isSafeInteger(value)) return value;
    return BigInt.asIntN(64, (BigInt(this.hi) << 32n) | BigInt(this.lo)).toString();
  }

  double(): number {
    if (this.end - this.pos < 8) throw malformed('truncated 64-bit field');
    const v = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return v;
  }

  /** A map entry's key: as `string`, and the same string as last time for a key met before (see keyBytes). */
  mapKey(what: string, what2 = ''): string {
    const stop = this.lengthDelimited();
    const { buf } = this;
    const start = this.pos;
    const length = stop - start;
    if (length === 0 || length > KEY_MAX_BYTES) return this.stringTo(stop, what, what2);
    const slot =
      (length * 31 + (buf[start] as number) * 7 + (buf[stop - 1] as number) + (buf[start + (length >> 1)] as number) * 3) & (KEY_SLOTS - 1);
    const known = keyBytes[slot];
    if (known !== undefined && known.length === length) {
      let i = 0;
      while (i < length && known[i] === buf[start + i]) i++;
      if (i === length) {
        this.pos = stop;
        return keyStrings[slot]!;
      }
    }
    const text = this.stringTo(stop, what, what2);
    // As many characters as bytes: all ASCII, so kept (a key of its own, from a copy of the bytes).
    if (text.length !== length) return text;
    const copy = Buffer.from(buf.subarray(start, stop));
    const key = (copy as SliceableBuffer).latin1Slice(0, length);
    keyBytes[slot] = copy;
    keyStrings[slot] = key;
    return key;
  }

  /**
   * A proto3 `string`: Go's decoder refuses invalid UTF-8 ("string field contains invalid UTF-8").
   * The field's name comes in parts, joined only for the error: this runs for every string on the wire.
   */
  string(what: string, what2 = '', what3 = ''): string {
    return this.stringTo(this.lengthDelimited(), what, what2, what3);
  }

  /** The string from the cursor to `stop` (a field's end, from lengthDelimited). */
  private stringTo(stop: number, what: string, what2 = '', what3 = ''): string {
    const { buf } = this;
    const start = this.pos;
    this.pos = stop;
    if (!asciiBytes(buf, start, stop)) {
      if (!isUtf8(buf.subarray(start, stop))) throw malformed(`${what}${what2}${what3}: string field contains invalid UTF-8`);
      return (buf as SliceableBuffer).utf8Slice(start, stop);
    }
    // All ASCII: its latin1 characters are the same string.
    this.latin1 ??= (buf as SliceableBuffer).latin1Slice(0, buf.length);
    return this.latin1.substring(start, stop);
  }

  /** `bytes` as protojson and Go's encoding/json write them: standard base64 with padding. */
  bytesBase64(): string {
    const stop = this.lengthDelimited();
    const start = this.pos;
    this.pos = stop;
    return this.buf.toString('base64', start, stop);
  }

  /**
   * Skips one field of an unknown number. Groups (deprecated wire types 3/4) are skipped to their matching
   * end tag, at most `depthLeft` deep; wire types 6 and 7 do not exist and are refused.
   */
  skip(field: number, wireType: number, depthLeft: number): void {
    switch (wireType) {
      case WIRE.VARINT:
        this.varint();
        return;
      case WIRE.I64:
        this.advance(8);
        return;
      case WIRE.LEN:
        this.pos = this.lengthDelimited();
        return;
      case WIRE.I32:
        this.advance(4);
        return;
      case WIRE.SGROUP:
        this.skipGroup(field, depthLeft);
        return;
      case WIRE.EGROUP:
        throw malformed(`unexpected end-group tag for field ${field}`);
      default:
        throw malformed(`invalid wire type ${wireType}`);
    }
  }

  private skipGroup(field: number, depthLeft: number): void {
    if (depthLeft <= 0) throw new VerdictError('ERR_REQUEST_TOO_DEEP', 'CheckRequest nests groups past the depth bound');
    while (this.pos < this.end) {
      const f = this.tag();
      if (this.wireType === WIRE.EGROUP) {
        if (f !== field) throw malformed(`end-group tag ${f} does not match group ${field}`);
        return;
      }
      this.skip(f, this.wireType, depthLeft - 1);
    }
    throw malformed(`group ${field} has no end tag`);
  }

  private advance(n: number): void {
    if (this.end - this.pos < n) throw malformed('truncated fixed-width field');
    this.pos += n;
  }
}

/**
 * True when buf[start, stop) has no byte >= 0x80. Four bytes per step (one test of their OR): the check runs
 * over every byte of every string on the wire, and this is ~1.8× the byte-at-a-time loop in a loop over the
 * bench fixture's strings.
 */
function asciiBytes(buf: Buffer, start: number, stop: number): boolean {
  let i = start;
  for (const last = stop - 3; i < last; i += 4) {
    if ((((buf[i] as number) | (buf[i + 1] as number) | (buf[i + 2] as number) | (buf[i + 3] as number)) & 0x80) !== 0) return false;
  }
  for (; i < stop; i++) if ((buf[i] as number) >= 0x80) return false;
  return true;
}

export function malformed(reason: string): VerdictError {
  return new VerdictError('ERR_REQUEST_MALFORMED', `CheckRequest does not decode: ${reason}`);
}
