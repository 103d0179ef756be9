/**
 * A tiny protobuf wire writer for hand-made (and deliberately broken) messages in tests
 * (protobuf encoding spec: tag = field << 3 | wire type; varints little-endian base 128).
 */
export function varint(n: bigint | number): number[] {
  const out: number[] = [];
  let v = BigInt.asUintN(64, BigInt(n));
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) b |= 0x80;
    out.push(b);
  } while (v !== 0n);
  return out;
}

export const tag = (field: number, wireType: number): number[] => varint((field << 3) | wireType);
export const len = (field: number, body: number[]): number[] => [...tag(field, 2), ...varint(body.length), ...body];
export const str = (field: number, s: string): number[] => len(field, [...Buffer.from(s, 'utf8')]);
export const int = (field: number, n: bigint | number): number[] => [...tag(field, 0), ...varint(n)];
/** CheckRequest { attributes = 1 { … } }. */
export const attrs = (...body: number[][]): Buffer => Buffer.from(len(1, body.flat()));
/** AttributeContext.request = 4 { http = 2 { … } }. */
export const http = (...body: number[][]): number[] => len(4, len(2, body.flat()));
