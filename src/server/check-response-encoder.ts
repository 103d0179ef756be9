/**
 * envoy.service.auth.v3.CheckResponse, encoded by hand from the proto-loader object form that
 * decisionToCheckResponse builds — no reflection at run time. A schema table per message names every field
 * verdict sends (numbers from envoy/service/auth/v3/external_auth.proto, config/core/v3/base.proto,
 * google/rpc/status.proto, google/protobuf/struct.proto and wrappers.proto); a key the table does not know
 * throws, so a new response field cannot be dropped silently (a test decodes the output with protobufjs).
 * As protobufjs does, a field present in the object is written even at its proto3 default (code 0, false,
 * ''), so decoders that keep presence (proto-loader with defaults off) see the same object.
 *
 * The writer fills a scratch buffer from the end backwards: a sub-message is written before its length,
 * so each length is known when it is needed and the encoding takes one pass and one copy.
 */

type Scalar = 'string' | 'int32' | 'bool' | 'double';
type Kind = Scalar | { enum: Readonly<Record<string, number>> } | { message: Schema } | { map: Schema };
interface Field {
  number: number;
  kind: Kind;
  repeated?: boolean;
}
type Schema = Readonly<Record<string, Field>>;

const HEADER_APPEND_ACTION = { APPEND_IF_EXISTS_OR_ADD: 0, ADD_IF_ABSENT: 1, OVERWRITE_IF_EXISTS_OR_ADD: 2, OVERWRITE_IF_EXISTS: 3 };
const NULL_VALUE = { NULL_VALUE: 0 };

const LIST_VALUE: Record<string, Field> = {};
const STRUCT: Record<string, Field> = {};
const VALUE: Schema = {
  nullValue: { number: 1, kind: { enum: NULL_VALUE } },
  numberValue: { number: 2, kind: 'double' },
  stringValue: { number: 3, kind: 'string' },
  boolValue: { number: 4, kind: 'bool' },
  structValue: { number: 5, kind: { message: STRUCT } },
  listValue: { number: 6, kind: { message: LIST_VALUE } },
};
LIST_VALUE.values = { number: 1, kind: { message: VALUE }, repeated: true };
STRUCT.fields = { number: 1, kind: { map: VALUE } };

const HEADER_VALUE_OPTION: Schema = {
  header: { number: 1, kind: { message: { key: { number: 1, kind: 'string' }, value: { number: 2, kind: 'string' } } } },
  append: { number: 2, kind: { message: { value: { number: 1, kind: 'bool' } } } },
  appendAction: { number: 3, kind: { enum: HEADER_APPEND_ACTION } },
  keepEmptyValue: { number: 4, kind: 'bool' },
};
const HEADERS: Field['kind'] = { message: HEADER_VALUE_OPTION };

const CHECK_RESPONSE: Schema = {
  status: { number: 1, kind: { message: { code: { number: 1, kind: 'int32' }, message: { number: 2, kind: 'string' } } } },
  deniedResponse: {
    number: 2,
    kind: {
      message: {
        status: { number: 1, kind: { message: { code: { number: 1, kind: 'int32' } } } },
        headers: { number: 2, kind: HEADERS, repeated: true },
        body: { number: 3, kind: 'string' },
      },
    },
  },
  okResponse: {
    number: 3,
    kind: {
      message: {
        headers: { number: 2, kind: HEADERS, repeated: true },
        dynamicMetadata: { number: 3, kind: { message: STRUCT } },
        headersToRemove: { number: 5, kind: 'string', repeated: true },
        responseHeadersToAdd: { number: 6, kind: HEADERS, repeated: true },
        queryParametersToSet: {
          number: 7,
          kind: { message: { key: { number: 1, kind: 'string' }, value: { number: 2, kind: 'string' } } },
          repeated: true,
        },
        queryParametersToRemove: { number: 8, kind: 'string', repeated: true },
      },
    },
  },
  dynamicMetadata: { number: 4, kind: { message: STRUCT } },
};

const MAP_ENTRY_KEY = 1;
const MAP_ENTRY_VALUE = 2;
const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;

/**
 * The buffer every encode starts in. Encoding is synchronous and result() copies out, so one buffer
 * serves all calls (a fresh 4 KiB Buffer.allocUnsafe is not pooled: it cost a new ArrayBuffer per Check).
 */
const SCRATCH = Buffer.allocUnsafe(4096);

/** Appends bytes before what is already written (the buffer fills from its end). */
class ReverseWriter {
  private buf = SCRATCH;
  private pos = this.buf.length;

  get written(): number {
    return this.buf.length - this.pos;
  }

  varint(value: number): void {
    // int32 negatives are 10-byte two's complement varints (proto3 encoding rules).
    if (value < 0) return this.bigVarint(BigInt.asUintN(64, BigInt(value)));
    // Non-negative: count the bytes, then write them in place (no array per call; this runs per field).
    let n = 1;
    for (let v = value; v > 0x7f; v = Math.floor(v / 0x80)) n++;
    this.reserve(n);
    this.pos -= n;
    let v = value;
    for (let i = 0; i < n - 1; i++) {
      this.buf[this.pos + i] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos + n - 1] = v;
  }

  private bigVarint(value: bigint): void {
    let v = value;
    const bytes: number[] = [];
    while (v > 0x7fn) {
      bytes.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    bytes.push(Number(v));
    this.reserve(bytes.length);
    this.pos -= bytes.length;
    for (let i = 0; i < bytes.length; i++) this.buf[this.pos + i] = bytes[i] as number;
  }

  tag(number: number, wire: number): void {
    this.varint(number * 8 + wire);
  }

  string(s: string): void {
    const len = Buffer.byteLength(s);
    this.reserve(len);
    this.pos -= len;
    this.buf.write(s, this.pos, len, 'utf8');
    this.varint(len);
  }

  double(d: number): void {
    this.reserve(8);
    this.pos -= 8;
    this.buf.writeDoubleLE(d, this.pos);
  }

  /** Prepends the gRPC Length-Prefixed-Message header (flag 0, big-endian length) for what is written so far. */
  lengthPrefix(): void {
    const length = this.written;
    this.reserve(5);
    this.pos -= 5;
    this.buf[this.pos] = 0;
    this.buf.writeUInt32BE(length, this.pos + 1);
  }

  result(): Buffer {
    return Buffer.from(this.buf.subarray(this.pos));
  }

  private reserve(n: number): void {
    if (this.pos >= n) return;
    const size = Math.max(this.buf.length * 2, this.written + n + 1024);
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, size - this.written, this.pos);
    this.pos = size - this.written;
    this.buf = next;
  }
}

export function encodeCheckResponse(response: Readonly<Record<string, unknown>>): Buffer {
  const w = new ReverseWriter();
  writeMessage(w, response, CHECK_RESPONSE, 'CheckResponse');
  return w.result();
}

/** The same, already framed as the gRPC Length-Prefixed-Message the server sends (saves a copy per call). */
export function encodeCheckResponseMessage(response: Readonly<Record<string, unknown>>): Buffer {
  const w = new ReverseWriter();
  writeMessage(w, response, CHECK_RESPONSE, 'CheckResponse');
  w.lengthPrefix();
  return w.result();
}

function writeMessage(w: ReverseWriter, obj: Readonly<Record<string, unknown>>, schema: Schema, path: string): void {
  const keys = Object.keys(obj);
  for (let k = keys.length - 1; k >= 0; k--) {
    const key = keys[k] as string;
    const value = obj[key];
    if (value === undefined || value === null) continue;
    const field = schema[key];
    if (!field) throw new TypeError(`encodeCheckResponse: ${path}.${key} is not a field verdict knows how to encode`);
    if (field.repeated) {
      if (!Array.isArray(value)) throw new TypeError(`encodeCheckResponse: ${path}.${key} must be an array`);
      for (let i = value.length - 1; i >= 0; i--) writeField(w, field, value[i], `${path}.${key}`);
    } else writeField(w, field, value, `${path}.${key}`);
  }
}

function writeField(w: ReverseWriter, field: Field, value: unknown, path: string): void {
  const kind = field.kind;
  if (typeof kind === 'object' && 'message' in kind) {
    const before = w.written;
    writeMessage(w, value as Record<string, unknown>, kind.message, path);
    w.varint(w.written - before);
    return w.tag(field.number, WIRE_LEN);
  }
  if (typeof kind === 'object' && 'map' in kind) return writeMap(w, field.number, value as Record<string, unknown>, kind.map, path);
  writeScalar(w, field.number, kind, value, path);
}

function writeMap(w: ReverseWriter, number: number, map: Readonly<Record<string, unknown>>, valueSchema: Schema, path: string): void {
  const keys = Object.keys(map);
  for (let k = keys.length - 1; k >= 0; k--) {
    const key = keys[k] as string;
    const before = w.written;
    const entryValueStart = w.written;
    writeMessage(w, map[key] as Record<string, unknown>, valueSchema, `${path}[${key}]`);
    w.varint(w.written - entryValueStart);
    w.tag(MAP_ENTRY_VALUE, WIRE_LEN);
    w.string(key);
    w.tag(MAP_ENTRY_KEY, WIRE_LEN);
    w.varint(w.written - before);
    w.tag(number, WIRE_LEN);
  }
}

function writeScalar(
  w: ReverseWriter,
  number: number,
  kind: Scalar | { enum: Readonly<Record<string, number>> },
  value: unknown,
  path: string,
): void {
  if (typeof kind === 'object') {
    const n = typeof value === 'number' ? value : kind.enum[value as string];
    if (n === undefined) throw new TypeError(`encodeCheckResponse: ${path} has no enum value ${String(value)}`);
    w.varint(n);
    return w.tag(number, WIRE_VARINT);
  }
  switch (kind) {
    case 'string':
      if (typeof value !== 'string') throw new TypeError(`encodeCheckResponse: ${path} must be a string`);
      w.string(value);
      return w.tag(number, WIRE_LEN);
    case 'int32':
    case 'bool': {
      const n = kind === 'bool' ? (value === true ? 1 : 0) : Number(value);
      if (kind === 'int32' && !Number.isInteger(n)) throw new TypeError(`encodeCheckResponse: ${path} must be an integer`);
      w.varint(n);
      return w.tag(number, WIRE_VARINT);
    }
    case 'double':
      if (typeof value !== 'number') throw new TypeError(`encodeCheckResponse: ${path} must be a number`);
      w.double(value);
      return w.tag(number, WIRE_FIXED64);
  }
}
