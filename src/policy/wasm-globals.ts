/**
 * Counts the mutable globals a wasm module defines (its global section, id 6; WebAssembly core spec,
 * "Binary Format" › "Modules" › "Global Section"). The module has already compiled, so its bytes are
 * well formed; the reader still checks every bound and answers null for anything it does not know how
 * to skip (an unusual constant expression), which callers treat as "not known to be safe".
 */
export function mutableGlobalCount(wasm: Uint8Array): number | null {
  try {
    return readGlobalSection(new Reader(wasm), wasm.length);
  } catch {
    return null; // a section that runs past the end
  }
}

function readGlobalSection(r: Reader, length: number): number | null {
  r.pos = 8; // magic and version
  while (r.pos < length) {
    const id = r.byte();
    const size = r.leb();
    const end = r.pos + size;
    if (end > length) return null;
    if (id === 6) return countMutable(r, end);
    r.pos = end;
  }
  return 0;
}

function countMutable(r: Reader, end: number): number | null {
  let mutable = 0;
  for (let n = r.leb(); n > 0; n--) {
    r.byte(); // value type
    if (r.byte() === 1) mutable++;
    if (!skipConstExpr(r, end)) return null;
  }
  return r.pos === end ? mutable : null;
}

// Constant expressions (i32/i64/f32/f64.const, global.get, ref.null, ref.func and the extended-constant
// arithmetic) until their `end` opcode.
function skipConstExpr(r: Reader, end: number): boolean {
  while (r.pos < end) {
    const op = r.byte();
    if (op === 0x0b) return true;
    if (op === 0x41 || op === 0x42 || op === 0x23 || op === 0xd2) r.leb();
    else if (op === 0x43) r.pos += 4;
    else if (op === 0x44) r.pos += 8;
    else if (op === 0xd0) r.pos += 1;
    else if (![0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e].includes(op)) return false;
  }
  return false;
}

class Reader {
  pos = 0;
  constructor(private readonly bytes: Uint8Array) {}

  byte(): number {
    if (this.pos >= this.bytes.length) throw new RangeError('wasm module ends inside a section');
    return this.bytes[this.pos++] as number;
  }

  /** A LEB128 of up to 10 bytes (i64 immediates); sizes and counts fit its first 35 bits, immediates are only skipped. */
  leb(): number {
    let value = 0;
    for (let i = 0; i < 10; i++) {
      const b = this.byte();
      if (i < 5) value += (b & 0x7f) * 2 ** (7 * i);
      if ((b & 0x80) === 0) return value;
    }
    throw new RangeError('wasm LEB128 longer than 10 bytes');
  }
}
