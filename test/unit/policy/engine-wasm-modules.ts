/**
 * Hand-assembled custom engine modules for the failure tests (WebAssembly core spec §5, binary format):
 * each is a few bytes that misbehave in exactly one way, so no compiler runs per test.
 */

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

function sleb64(v: bigint): number[] {
  const out: number[] = [];
  for (;;) {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    const done = (v === 0n && (b & 0x40) === 0) || (v === -1n && (b & 0x40) !== 0);
    out.push(done ? b : b | 0x80);
    if (done) return out;
  }
}

const str = (s: string): number[] => [...leb(Buffer.byteLength(s)), ...Buffer.from(s)];
const vec = (items: number[][]): number[] => [...leb(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...leb(body.length), ...body];

const I32 = 0x7f;
const I64 = 0x7e;
const OP = {
  unreachable: 0x00,
  loop: 0x03,
  if: 0x04,
  void: 0x40,
  end: 0x0b,
  br: 0x0c,
  call: 0x10,
  localGet: 0x20,
  i32Const: 0x41,
  i64Const: 0x42,
  i32And: 0x71,
};

export interface ModuleSpec {
  /** Body of evaluate(ptr: i32, len: i32) -> i64, without its final `end`. */
  evaluate: number[];
  /** Bytes placed at address 0 (the decision the body points at). */
  data?: string;
  /** Import env.host_clock: () -> i64 as function 0. */
  withImport?: boolean;
  /** Memory maximum in pages; null for none. */
  maxPages?: number | null;
  /** Body of a start function (run at instantiation, core spec §2.5.9), without its final `end`. */
  start?: number[];
}

export function assemble(spec: ModuleSpec): Buffer {
  const types = section(
    1,
    vec([
      [0x60, ...vec([[I32]]), ...vec([[I32]])],
      [0x60, ...vec([[I32], [I32]]), ...vec([[I64]])],
      [0x60, 0, ...vec([[I64]])],
      [0x60, 0, 0],
    ]),
  );
  const imports = spec.withImport ? section(2, vec([[...str('env'), ...str('host_clock'), 0x00, 2]])) : [];
  const base = spec.withImport ? 1 : 0;
  const funcs = section(3, vec(spec.start ? [[0], [1], [3]] : [[0], [1]]));
  const max = spec.maxPages === undefined ? 4 : spec.maxPages;
  const memory = section(5, vec([max === null ? [0x00, 1] : [0x01, 1, ...leb(max)]]));
  const exports = section(
    7,
    vec([
      [...str('memory'), 0x02, 0],
      [...str('alloc'), 0x00, base],
      [...str('evaluate'), 0x00, base + 1],
    ]),
  );
  const body = (code: number[]): number[] => {
    const b = [0, ...code, OP.end];
    return [...leb(b.length), ...b];
  };
  const start = spec.start ? section(8, leb(base + 2)) : [];
  const bodies = [body([OP.i32Const, ...leb(1024)]), body(spec.evaluate), ...(spec.start ? [body(spec.start)] : [])];
  const code = section(10, vec(bodies));
  const data = spec.data ? section(11, vec([[0, OP.i32Const, 0, OP.end, ...str(spec.data)]])) : [];
  return Buffer.from([
    0x00,
    0x61,
    0x73,
    0x6d,
    1,
    0,
    0,
    0,
    ...types,
    ...imports,
    ...funcs,
    ...memory,
    ...exports,
    ...start,
    ...code,
    ...data,
  ]);
}

/** i64.const (ptr << 32 | len). */
export function returns(ptr: number, len: number): number[] {
  return [OP.i64Const, ...sleb64(BigInt.asIntN(64, (BigInt(ptr) << 32n) | BigInt(len)))];
}

/** `if (len & 1) { … }` around the given code. */
export function ifOddLength(code: number[]): number[] {
  return [OP.localGet, 1, OP.i32Const, 1, OP.i32And, OP.if, OP.void, ...code, OP.end];
}

export const TRAP = [OP.unreachable];
export const LOOP_FOREVER = [OP.loop, OP.void, OP.br, 0, OP.end];
export const CALL_IMPORT = [OP.call, 0];
