import { VerdictError } from '../errors';
import { ExactNumber } from './exact-number';
import { ProtoWireReader, WIRE, malformed } from './proto-wire-reader';

/**
 * What the generated per-message decoders (check-request-decoder.generated.ts) share: the decode state and
 * its bounds, map entries, google.protobuf.Struct/Value/ListValue (structpb's JSON forms, not from the
 * schema tables), and the errors. The semantics are documented on decodeCheckRequest.
 */

/** Bounds on one CheckRequest; every one is checked while decoding, before any policy work. */
export interface CheckRequestLimits {
  /** Larger messages are refused undecoded (ERR_REQUEST_TOO_LARGE). */
  maxRequestBytes: number;
  /** Entries in `headers`, and separately in `headerMap.headers` (ERR_REQUEST_TOO_MANY_HEADERS). */
  maxHeaders: number;
  /** Nesting of objects and lists, counted from the input document's root (ERR_REQUEST_TOO_DEEP). */
  maxInputDepth: number;
  /** Fields read off the wire, known or not (ERR_REQUEST_TOO_MANY_FIELDS). */
  maxRequestFields: number;
}

export type JSONObject = Record<string, unknown>;

export interface DecodeState {
  readonly limits: CheckRequestLimits;
  fieldsLeft: number;
  exactNumbers: boolean;
  /** Entries seen per header-carrying field (duplicates included), by the index the generator gave it. */
  readonly headerEntries: number[];
}

/** Decodes one message's payload (the reader narrowed to it) into `into`, or a new object. */
export type MessageDecoder = (r: ProtoWireReader, into: JSONObject | undefined, depth: number, s: DecodeState) => JSONObject;

export function tooManyFields(s: DecodeState): VerdictError {
  return new VerdictError('ERR_REQUEST_TOO_MANY_FIELDS', `CheckRequest has more than ${s.limits.maxRequestFields} fields`);
}

export function countField(s: DecodeState): void {
  if (--s.fieldsLeft < 0) throw tooManyFields(s);
}

export function checkDepth(depth: number, s: DecodeState): void {
  if (depth > s.limits.maxInputDepth)
    throw new VerdictError('ERR_REQUEST_TOO_DEEP', `CheckRequest nests deeper than ${s.limits.maxInputDepth} levels`);
}

/** A known field on another wire type: Go files it as unknown; verdict refuses (deny on doubt). */
export function wrongWire(actual: number, expected: number, field: string): VerdictError {
  return malformed(`${field} has wire type ${actual}, expected ${expected}`);
}

export function countHeader(s: DecodeState, index: number): void {
  const n = s.headerEntries[index]! + 1;
  if (n > s.limits.maxHeaders)
    throw new VerdictError('ERR_REQUEST_TOO_MANY_HEADERS', `request has more than ${s.limits.maxHeaders} headers`);
  s.headerEntries[index] = n;
}

/** An int64/uint64 past 2^53, kept as its decimal text. */
export function exactNumber(s: DecodeState, text: string): ExactNumber {
  s.exactNumbers = true;
  return new ExactNumber(text);
}

/**
 * One map entry (a message with key = 1, value = 2) into `map`; a missing key or value is its type's
 * default. `json` names the map field in errors.
 */
export function decodeMapEntry(
  r: ProtoWireReader,
  map: JSONObject,
  json: string,
  value: 'string' | 'struct' | MessageDecoder,
  depth: number,
  s: DecodeState,
): void {
  let key = '';
  let v: unknown;
  while (r.pos < r.end) {
    const field = r.tag();
    const wireType = r.wireType;
    countField(s);
    if (field === 1) {
      if (wireType !== WIRE.LEN) throw wrongWire(wireType, WIRE.LEN, `map entry.${json}`);
      key = r.mapKey(json, ' key');
    } else if (field === 2) {
      if (wireType !== WIRE.LEN) throw wrongWire(wireType, WIRE.LEN, `map entry.${json}`);
      if (value === 'string') v = r.string(json, ' value');
      else {
        const outer = r.enter(r.lengthDelimited());
        const into = typeof v === 'object' && v !== null ? (v as JSONObject) : undefined;
        v = value === 'struct' ? decodeStruct(r, into ?? {}, depth + 1, s) : value(r, into, depth + 1, s);
        r.leave(outer);
      }
    } else r.skip(field, wireType, s.limits.maxInputDepth - depth);
  }
  setKey(map, key, v ?? (value === 'string' ? '' : {}));
}

/** google.protobuf.Struct → a plain object (structpb AsMap): its `fields` map, each Value as JSON. */
export function decodeStruct(r: ProtoWireReader, target: JSONObject, depth: number, s: DecodeState): JSONObject {
  checkDepth(depth, s);
  while (r.pos < r.end) {
    const field = r.tag();
    const wireType = r.wireType;
    countField(s);
    if (field !== 1) {
      r.skip(field, wireType, s.limits.maxInputDepth - depth);
      continue;
    }
    if (wireType !== WIRE.LEN) throw wrongWire(wireType, WIRE.LEN, 'google.protobuf.Struct.fields');
    const outer = r.enter(r.lengthDelimited());
    let key = '';
    let value: unknown = null;
    while (r.pos < r.end) {
      const f = r.tag();
      const wt = r.wireType;
      countField(s);
      if (f === 1) {
        if (wt !== WIRE.LEN) throw wrongWire(wt, WIRE.LEN, 'google.protobuf.Struct.fields key');
        key = r.string('google.protobuf.Struct key');
      } else if (f === 2) {
        if (wt !== WIRE.LEN) throw wrongWire(wt, WIRE.LEN, 'google.protobuf.Struct.fields value');
        const inner = r.enter(r.lengthDelimited());
        value = decodeValue(r, value, depth + 1, s);
        r.leave(inner);
      } else r.skip(f, wt, s.limits.maxInputDepth - depth);
    }
    setKey(target, key, value);
    r.leave(outer);
  }
  return target;
}

/**
 * google.protobuf.Value → JSON (structpb `AsInterface`): the last kind set wins; no kind is null; a
 * struct or list seen twice merges. A non-finite number_value has no JSON form and is refused.
 */
function decodeValue(r: ProtoWireReader, previous: unknown, depth: number, s: DecodeState): unknown {
  let value: unknown = previous ?? null;
  while (r.pos < r.end) {
    const field = r.tag();
    const wireType = r.wireType;
    countField(s);
    switch (field) {
      case 1:
        if (wireType !== WIRE.VARINT) throw wrongWire(wireType, WIRE.VARINT, 'google.protobuf.Value.nullValue');
        r.varint();
        value = null;
        break;
      case 2:
        if (wireType !== WIRE.I64) throw wrongWire(wireType, WIRE.I64, 'google.protobuf.Value.numberValue');
        value = r.double();
        if (!Number.isFinite(value)) throw malformed('google.protobuf.Value.number_value is not finite');
        break;
      case 3:
        if (wireType !== WIRE.LEN) throw wrongWire(wireType, WIRE.LEN, 'google.protobuf.Value.stringValue');
        value = r.string('google.protobuf.Value.string_value');
        break;
      case 4:
        if (wireType !== WIRE.VARINT) throw wrongWire(wireType, WIRE.VARINT, 'google.protobuf.Value.boolValue');
        value = r.bool();
        break;
      case 5: {
        if (wireType !== WIRE.LEN) throw wrongWire(wireType, WIRE.LEN, 'google.protobuf.Value.structValue');
        const outer = r.enter(r.lengthDelimited());
        value = decodeStruct(r, isPlainObject(value) ? value : {}, depth, s);
        r.leave(outer);
        break;
      }
      case 6: {
        if (wireType !== WIRE.LEN) throw wrongWire(wireType, WIRE.LEN, 'google.protobuf.Value.listValue');
        const outer = r.enter(r.lengthDelimited());
        value = decodeList(r, Array.isArray(value) ? value : [], depth, s);
        r.leave(outer);
        break;
      }
      default:
        r.skip(field, wireType, s.limits.maxInputDepth - depth);
    }
  }
  return value;
}

function decodeList(r: ProtoWireReader, list: unknown[], depth: number, s: DecodeState): unknown[] {
  checkDepth(depth, s);
  while (r.pos < r.end) {
    const field = r.tag();
    const wireType = r.wireType;
    countField(s);
    if (field !== 1) {
      r.skip(field, wireType, s.limits.maxInputDepth - depth);
      continue;
    }
    if (wireType !== WIRE.LEN) throw wrongWire(wireType, WIRE.LEN, 'google.protobuf.Struct.values');
    const outer = r.enter(r.lengthDelimited());
    list.push(decodeValue(r, undefined, depth + 1, s));
    r.leave(outer);
  }
  return list;
}

/**
 * Map keys come from the wire: `__proto__` is stored as an own property (never the prototype setter), so
 * plain objects are safe and stay on V8's fast path.
 */
function setKey(obj: JSONObject, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  else obj[key] = value;
}

function isPlainObject(v: unknown): v is JSONObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
