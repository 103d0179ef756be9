import { VerdictError } from '../errors';
import type { CheckRequest, ReceivedCheckRequest } from './check-request';
import { CHECK_REQUEST_SPEC, type FieldSpec, type MessageSpec, type ScalarKind } from './check-request-schema';
import { ExactNumber } from './exact-number';
import { ProtoWireReader, WIRE, malformed } from './proto-wire-reader';

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

type JSONObject = Record<string, unknown>;

interface DecodeState {
  readonly limits: CheckRequestLimits;
  fieldsLeft: number;
  exactNumbers: boolean;
  /** Entries seen per header-carrying field (duplicates included). */
  readonly headerEntries: Map<FieldSpec, number>;
}

/**
 * Decodes envoy.service.auth.v3.CheckRequest wire bytes straight into the document opa-envoy-plugin gives a
 * policy (envoyauth/protomap.go `protomap`, called from envoyauth/request.go `RequestToInput`):
 * - keys are the fields' JSON names; only set fields appear (proto3 implicit presence: a zero, an empty
 *   string, an empty map or list is absent; a oneof member is present whenever it is the one set; a
 *   message field is present, possibly `{}`, whenever it is on the wire);
 * - int64/uint64 and Timestamp `{seconds, nanos}` are JSON numbers (an ExactNumber past 2^53), enums their
 *   numbers, bytes standard base64, google.protobuf.Struct plain JSON (`AsMap`), map keys as given;
 * - merging follows the protobuf spec: a repeated message field appends, a message field seen twice merges,
 *   a scalar seen twice keeps the last value; unknown fields are skipped (also as Go does).
 *
 * Never throws: an undecodable message (truncated, bad varint, invalid wire type, a known field on the
 * wrong wire type, invalid UTF-8) or one over a bound comes back with `message: null` and a coded
 * `refusal`, and must never be evaluated. Meant to be the gRPC request deserializer of any transport.
 */
export function decodeCheckRequest(buf: Buffer, limits: CheckRequestLimits): ReceivedCheckRequest {
  const wireBytes = buf.length;
  if (wireBytes > limits.maxRequestBytes) {
    const refusal = new VerdictError('ERR_REQUEST_TOO_LARGE', `CheckRequest of ${wireBytes} bytes exceeds ${limits.maxRequestBytes}`);
    return { message: null, wireBytes, refusal };
  }
  const state: DecodeState = { limits, fieldsLeft: limits.maxRequestFields, exactNumbers: false, headerEntries: new Map() };
  try {
    const message = decodeMessage(new ProtoWireReader(buf, 0, wireBytes), CHECK_REQUEST_SPEC, {}, 1, state) as CheckRequest;
    return { message, wireBytes, exactNumbers: state.exactNumbers };
  } catch (err) {
    const refusal = err instanceof VerdictError ? err : malformed((err as Error).message);
    return { message: null, wireBytes, refusal };
  }
}

function decodeMessage(r: ProtoWireReader, spec: MessageSpec, target: JSONObject, depth: number, s: DecodeState): JSONObject {
  checkDepth(depth, s);
  while (r.pos < r.end) {
    const field = r.tag();
    const wireType = r.wireType;
    countField(s);
    const f = spec.fields[field];
    if (f === undefined) {
      r.skip(field, wireType, s.limits.maxInputDepth - depth);
      continue;
    }
    decodeField(r, spec, field, f, wireType, target, depth, s);
  }
  return target;
}

function decodeField(
  r: ProtoWireReader,
  spec: MessageSpec,
  field: number,
  f: FieldSpec,
  wireType: number,
  target: JSONObject,
  depth: number,
  s: DecodeState,
): void {
  if (f.kind === 'message') {
    expectWire(wireType, WIRE.LEN, spec, f.json);
    const outer = r.enter(r.lengthDelimited());
    const existing = target[f.json];
    const into = typeof existing === 'object' && existing !== null ? (existing as JSONObject) : {};
    if (f.oneof !== undefined) clearOneof(spec, field, target);
    target[f.json] = decodeMessage(r, f.type(), into, depth + 1, s);
    r.leave(outer);
    return;
  }
  if (f.kind === 'repeated') {
    expectWire(wireType, WIRE.LEN, spec, f.json);
    const outer = r.enter(r.lengthDelimited());
    const list = (target[f.json] as unknown[] | undefined) ?? [];
    checkDepth(depth + 1, s);
    if (f.countsAsHeader) countHeader(f, s);
    list.push(decodeMessage(r, f.type(), {}, depth + 2, s));
    target[f.json] = list;
    r.leave(outer);
    return;
  }
  if (f.kind === 'map') {
    expectWire(wireType, WIRE.LEN, spec, f.json);
    const outer = r.enter(r.lengthDelimited());
    const map = (target[f.json] as JSONObject | undefined) ?? {};
    checkDepth(depth + 1, s);
    if (f.countsAsHeader) countHeader(f, s);
    decodeMapEntry(r, f, map, depth + 1, s);
    target[f.json] = map;
    r.leave(outer);
    return;
  }
  if (f.kind === 'struct') {
    expectWire(wireType, WIRE.LEN, spec, f.json);
    const outer = r.enter(r.lengthDelimited());
    const existing = target[f.json] as JSONObject | undefined;
    target[f.json] = decodeStruct(r, existing ?? {}, depth + 1, s);
    r.leave(outer);
    return;
  }
  const value = decodeScalar(r, f.kind, wireType, spec, f.json, s);
  if (f.oneof !== undefined) {
    clearOneof(spec, field, target);
    target[f.json] = value;
  } else if (isZero(value)) delete target[f.json];
  else target[f.json] = value;
}

function decodeScalar(r: ProtoWireReader, kind: ScalarKind, wireType: number, spec: MessageSpec, json: string, s: DecodeState): unknown {
  switch (kind) {
    case 'string':
      expectWire(wireType, WIRE.LEN, spec, json);
      return r.string(spec.name, '.', json);
    case 'bytes':
      expectWire(wireType, WIRE.LEN, spec, json);
      return r.bytesBase64();
    case 'bool':
      expectWire(wireType, WIRE.VARINT, spec, json);
      return r.bool();
    case 'uint32':
      expectWire(wireType, WIRE.VARINT, spec, json);
      return r.uint32();
    case 'int32':
    case 'enum':
      expectWire(wireType, WIRE.VARINT, spec, json);
      return r.int32();
    case 'int64':
    case 'uint64': {
      expectWire(wireType, WIRE.VARINT, spec, json);
      const v = kind === 'int64' ? r.int64() : r.uint64();
      if (typeof v === 'number') return v;
      s.exactNumbers = true;
      return new ExactNumber(v);
    }
  }
}

/** One map entry (a message with key = 1, value = 2); a missing key or value is its type's default. */
function decodeMapEntry(r: ProtoWireReader, f: FieldSpec & { kind: 'map' }, map: JSONObject, depth: number, s: DecodeState): void {
  let key = '';
  let value: unknown;
  while (r.pos < r.end) {
    const field = r.tag();
    const wireType = r.wireType;
    countField(s);
    if (field === 1) {
      expectWire(wireType, WIRE.LEN, MAP_ENTRY, f.json);
      key = r.string(f.json, ' key');
    } else if (field === 2) {
      expectWire(wireType, WIRE.LEN, MAP_ENTRY, f.json);
      value = decodeMapValue(r, f, value, depth, s);
    } else r.skip(field, wireType, s.limits.maxInputDepth - depth);
  }
  setKey(map, key, value ?? defaultMapValue(f));
}

const MAP_ENTRY: MessageSpec = { name: 'map entry', fields: [] };

function decodeMapValue(r: ProtoWireReader, f: FieldSpec & { kind: 'map' }, previous: unknown, depth: number, s: DecodeState): unknown {
  if (f.value === 'string') return r.string(f.json, ' value');
  const outer = r.enter(r.lengthDelimited());
  const into = typeof previous === 'object' && previous !== null ? (previous as JSONObject) : undefined;
  const out = f.value === 'struct' ? decodeStruct(r, into ?? {}, depth + 1, s) : decodeMessage(r, f.value(), into ?? {}, depth + 1, s);
  r.leave(outer);
  return out;
}

function defaultMapValue(f: FieldSpec & { kind: 'map' }): unknown {
  return f.value === 'string' ? '' : f.value === 'struct' ? {} : {};
}

/** google.protobuf.Struct → a plain object (structpb AsMap): its `fields` map, each Value as JSON. */
function decodeStruct(r: ProtoWireReader, target: JSONObject, depth: number, s: DecodeState): JSONObject {
  checkDepth(depth, s);
  while (r.pos < r.end) {
    const field = r.tag();
    const wireType = r.wireType;
    countField(s);
    if (field !== 1) {
      r.skip(field, wireType, s.limits.maxInputDepth - depth);
      continue;
    }
    expectWire(wireType, WIRE.LEN, STRUCT, 'fields');
    const outer = r.enter(r.lengthDelimited());
    let key = '';
    let value: unknown = null;
    while (r.pos < r.end) {
      const f = r.tag();
      const wt = r.wireType;
      countField(s);
      if (f === 1) {
        expectWire(wt, WIRE.LEN, STRUCT, 'fields key');
        key = r.string('google.protobuf.Struct key');
      } else if (f === 2) {
        expectWire(wt, WIRE.LEN, STRUCT, 'fields value');
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

const STRUCT: MessageSpec = { name: 'google.protobuf.Struct', fields: [] };
const VALUE: MessageSpec = { name: 'google.protobuf.Value', fields: [] };

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
        expectWire(wireType, WIRE.VARINT, VALUE, 'nullValue');
        r.varint();
        value = null;
        break;
      case 2:
        expectWire(wireType, WIRE.I64, VALUE, 'numberValue');
        value = r.double();
        if (!Number.isFinite(value)) throw malformed('google.protobuf.Value.number_value is not finite');
        break;
      case 3:
        expectWire(wireType, WIRE.LEN, VALUE, 'stringValue');
        value = r.string('google.protobuf.Value.string_value');
        break;
      case 4:
        expectWire(wireType, WIRE.VARINT, VALUE, 'boolValue');
        value = r.bool();
        break;
      case 5: {
        expectWire(wireType, WIRE.LEN, VALUE, 'structValue');
        const outer = r.enter(r.lengthDelimited());
        value = decodeStruct(r, isPlainObject(value) ? value : {}, depth, s);
        r.leave(outer);
        break;
      }
      case 6: {
        expectWire(wireType, WIRE.LEN, VALUE, 'listValue');
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
    expectWire(wireType, WIRE.LEN, STRUCT, 'values');
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

function countField(s: DecodeState): void {
  if (--s.fieldsLeft < 0)
    throw new VerdictError('ERR_REQUEST_TOO_MANY_FIELDS', `CheckRequest has more than ${s.limits.maxRequestFields} fields`);
}

function isPlainObject(v: unknown): v is JSONObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function clearOneof(spec: MessageSpec, field: number, target: JSONObject): void {
  for (const json of spec.oneofSiblings?.[field] ?? []) if (json in target) delete target[json];
}

function isZero(v: unknown): boolean {
  return v === '' || v === 0 || v === false;
}

function checkDepth(depth: number, s: DecodeState): void {
  if (depth > s.limits.maxInputDepth)
    throw new VerdictError('ERR_REQUEST_TOO_DEEP', `CheckRequest nests deeper than ${s.limits.maxInputDepth} levels`);
}

/** A known field on another wire type: Go files it as unknown; verdict refuses (deny on doubt). */
function expectWire(actual: number, expected: number, spec: MessageSpec, json: string): void {
  if (actual !== expected) throw malformed(`${spec.name}.${json} has wire type ${actual}, expected ${expected}`);
}

function countHeader(f: FieldSpec, s: DecodeState): void {
  const n = (s.headerEntries.get(f) ?? 0) + 1;
  if (n > s.limits.maxHeaders)
    throw new VerdictError('ERR_REQUEST_TOO_MANY_HEADERS', `request has more than ${s.limits.maxHeaders} headers`);
  s.headerEntries.set(f, n);
}
