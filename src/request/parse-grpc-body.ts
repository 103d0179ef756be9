import type * as protobuf from 'protobufjs';
import { VerdictError } from '../errors';
import { ExactNumber, numberFromLexeme } from './exact-number';
import type { GRPCBodyTypes } from './grpc-body-types';
import { ProtoWireReader, WIRE } from './proto-wire-reader';
import { protojsonWellKnown } from './protojson-well-known';

export interface GRPCBody {
  parsedBody: unknown;
  truncatedBody: boolean;
  exactNumbers: boolean;
}

/** A decoded message before rendering: raw field values by field, so repeated occurrences merge (proto spec). */
export interface MessageSlots {
  type: protobuf.Type;
  values: Map<protobuf.Field, unknown>;
}

const NONE: GRPCBody = Object.freeze({ parsedBody: null, truncatedBody: false, exactNumbers: false });
const CUT: GRPCBody = Object.freeze({ parsedBody: null, truncatedBody: true, exactNumbers: false });

/**
 * A gRPC request body as opa-envoy-plugin's envoyauth/request.go `getParsedBody` (application/grpc branch)
 * and `getGRPCBody` give it. `raw` is the `raw_body` Envoy sent (pack_as_bytes); `parsedPath` is the
 * request path split as `/pkg.Service/Method`.
 * - fewer than 5 bytes → parse error "less than 5 bytes"; compressed flag set → null (not decompressed);
 * - a declared message length past the bytes sent → truncated; only the first message is read;
 * - unknown service or method, or a client-streaming method → null;
 * - the message is decoded (invalid wire data, invalid UTF-8, a missing proto2 required field → parse error)
 *   and given as protojson.Marshal writes it (json_name keys, int64 as strings, enum names, base64 bytes,
 *   implicit-presence defaults omitted, well-known types in their JSON forms), numbers kept as written.
 */
export function parseGRPCBody(
  raw: Buffer,
  parsedPath: readonly string[],
  types: GRPCBodyTypes,
  bounds: { depthLeft: number; maxFields: number },
): GRPCBody {
  if (parsedPath.length !== 2) throw new VerdictError('ERR_REQUEST_BODY_PARSE', 'invalid parsed path');
  if (raw.length < 5) throw new VerdictError('ERR_REQUEST_BODY_PARSE', 'less than 5 bytes');
  if (raw[0] !== 0) return NONE;
  const size = raw.readUInt32BE(1);
  if (size > raw.length - 5) return CUT;
  const type = types.inputType(parsedPath[0] as string, parsedPath[1] as string);
  if (type === null) return NONE;
  const decoder = new MessageDecoder(types, raw, 5, 5 + size, bounds.maxFields);
  let slots: MessageSlots;
  try {
    slots = decoder.message(type, bounds.depthLeft);
  } catch (err) {
    if (err instanceof VerdictError && err.code === 'ERR_REQUEST_MALFORMED') {
      // Go proto.Unmarshal's error text for any wire-format fault.
      throw new VerdictError('ERR_REQUEST_BODY_PARSE', 'proto: cannot parse invalid wire-format data');
    }
    throw err;
  }
  const render = new ProtojsonRenderer(types);
  const value = render.message(slots);
  return { parsedBody: value, truncatedBody: false, exactNumbers: render.exactNumbers };
}

const VARINT_TYPES = new Set(['int32', 'int64', 'uint32', 'uint64', 'sint32', 'sint64', 'bool']);
const I64_TYPES = new Set(['fixed64', 'sfixed64', 'double']);
const I32_TYPES = new Set(['fixed32', 'sfixed32', 'float']);

/** Reads one message's fields into slots; unknown fields and wire-type mismatches are skipped, as Go does. */
class MessageDecoder {
  private readonly r: ProtoWireReader;
  /** Fields and packed elements still allowed: memory stays proportional to a bound, not to the body. */
  private fieldsLeft: number;

  constructor(
    private readonly types: GRPCBodyTypes,
    buf: Buffer,
    start: number,
    end: number,
    maxFields: number,
  ) {
    this.r = new ProtoWireReader(buf, start, end);
    this.fieldsLeft = maxFields;
  }

  private count(): void {
    if (--this.fieldsLeft < 0) throw new VerdictError('ERR_REQUEST_TOO_MANY_FIELDS', 'gRPC body carries more fields than the bound');
  }

  message(type: protobuf.Type, depthLeft: number, into?: MessageSlots): MessageSlots {
    if (depthLeft <= 0) throw new VerdictError('ERR_REQUEST_TOO_DEEP', 'gRPC body nests past the depth bound');
    const slots = into ?? { type, values: new Map() };
    const { r } = this;
    while (r.pos < r.end) {
      const id = r.tag();
      this.count();
      const field = type.fieldsById[id];
      if (field === undefined || !this.field(slots, field, r.wireType, depthLeft)) r.skip(id, r.wireType, depthLeft);
    }
    for (const f of this.types.requiredFields(type)) {
      if (!slots.values.has(f)) {
        throw new VerdictError('ERR_REQUEST_BODY_PARSE', `proto: required field ${this.types.fullName(type)}.${f.name} not set`);
      }
    }
    return slots;
  }

  /** Reads one occurrence; false when the wire type does not fit the field (Go keeps it as unknown). */
  private field(slots: MessageSlots, field: protobuf.Field, wire: number, depthLeft: number): boolean {
    const { values } = slots;
    if (this.types.isMapField(field)) {
      if (wire !== WIRE.LEN) return false;
      this.mapEntry(values, field, depthLeft);
      return true;
    }
    const resolved = field.resolvedType;
    const isMessage = resolved !== null && !isEnum(resolved);
    if (field.repeated) {
      const list = (values.get(field) as unknown[] | undefined) ?? [];
      if (isMessage) {
        if (wire !== WIRE.LEN) return false;
        list.push(this.nested(resolved as protobuf.Type, depthLeft));
      } else if (wire === WIRE.LEN && field.type !== 'string' && field.type !== 'bytes') {
        const stop = this.r.lengthDelimited();
        const outer = this.r.enter(stop);
        while (this.r.pos < this.r.end) {
          this.count();
          const v = this.scalar(field);
          if (!isUnknownClosedEnum(field, v)) list.push(v);
        }
        this.r.leave(outer);
      } else {
        if (!this.wireFits(field, wire)) return false;
        const v = this.scalar(field);
        if (!isUnknownClosedEnum(field, v)) list.push(v);
      }
      values.set(field, list);
      return true;
    }
    if (isMessage) {
      if (wire === WIRE.SGROUP) throw new VerdictError('ERR_REQUEST_BODY_PARSE', 'proto2 groups in a gRPC body are not supported');
      if (wire !== WIRE.LEN) return false;
      const prior = values.get(field) as MessageSlots | undefined;
      this.clearOneof(values, field);
      values.set(field, this.nested(resolved as protobuf.Type, depthLeft, prior));
      return true;
    }
    if (!this.wireFits(field, wire)) return false;
    const v = this.scalar(field);
    if (isUnknownClosedEnum(field, v)) return true;
    this.clearOneof(values, field);
    values.set(field, v);
    return true;
  }

  private nested(type: protobuf.Type, depthLeft: number, prior?: MessageSlots): MessageSlots {
    const stop = this.r.lengthDelimited();
    const outer = this.r.enter(stop);
    const slots = this.message(type, depthLeft - 1, prior);
    this.r.leave(outer);
    return slots;
  }

  /** A map entry (key 1, value 2; either may be absent and then takes its default). Last key wins. */
  private mapEntry(values: Map<protobuf.Field, unknown>, field: protobuf.Field, depthLeft: number): void {
    const map = (values.get(field) as Map<unknown, unknown> | undefined) ?? new Map<unknown, unknown>();
    const entry = field.resolvedType as protobuf.Type;
    const slots = this.nested(entry, depthLeft);
    const keyField = entry.fieldsById[1];
    const valueField = entry.fieldsById[2];
    if (keyField === undefined || valueField === undefined)
      throw new VerdictError('ERR_REQUEST_BODY_PARSE', `map entry ${entry.name} lacks key or value`);
    const key = slots.values.has(keyField) ? slots.values.get(keyField) : scalarDefault(keyField);
    map.set(key, slots.values.has(valueField) ? slots.values.get(valueField) : defaultOf(valueField));
    values.set(field, map);
  }

  private clearOneof(values: Map<protobuf.Field, unknown>, field: protobuf.Field): void {
    const oneof = field.partOf;
    if (oneof) for (const other of oneof.fieldsArray) if (other !== field) values.delete(other);
  }

  private wireFits(field: protobuf.Field, wire: number): boolean {
    if (field.resolvedType !== null) return wire === WIRE.VARINT; // an enum
    if (VARINT_TYPES.has(field.type)) return wire === WIRE.VARINT;
    if (I64_TYPES.has(field.type)) return wire === WIRE.I64;
    if (I32_TYPES.has(field.type)) return wire === WIRE.I32;
    return wire === WIRE.LEN; // string, bytes
  }

  /** One scalar in its raw form: 64-bit integers as decimal strings, bytes as base64, enums as numbers. */
  private scalar(field: protobuf.Field): unknown {
    const { r } = this;
    if (field.resolvedType !== null) return r.int32();
    switch (field.type) {
      case 'int32':
        return r.int32();
      case 'uint32':
        return r.uint32();
      case 'sint32': {
        const n = r.uint32();
        return (n >>> 1) ^ -(n & 1);
      }
      case 'int64':
        return String(r.int64());
      case 'uint64':
        return String(r.uint64());
      case 'sint64': {
        const n = BigInt(r.uint64());
        return String((n >> 1n) ^ -(n & 1n));
      }
      case 'bool':
        return r.bool();
      case 'fixed32':
        return this.fixed(4).readUInt32LE(0);
      case 'sfixed32':
        return this.fixed(4).readInt32LE(0);
      case 'float':
        return this.fixed(4).readFloatLE(0);
      case 'fixed64':
        return this.fixed(8).readBigUInt64LE(0).toString();
      case 'sfixed64':
        return this.fixed(8).readBigInt64LE(0).toString();
      case 'double':
        return r.double();
      case 'string':
        return r.string(field.name);
      case 'bytes':
        return r.bytesBase64();
      default:
        throw new VerdictError('ERR_REQUEST_BODY_PARSE', `unsupported field type ${field.type}`);
    }
  }

  private fixed(n: number): Buffer {
    const { r } = this;
    if (r.end - r.pos < n) throw new VerdictError('ERR_REQUEST_MALFORMED', 'truncated fixed-width field');
    const out = r.buf.subarray(r.pos, r.pos + n);
    r.pos += n;
    return out;
  }
}

/**
 * A closed (proto2) enum keeps a number it does not name as an unknown field, so it is not set (protobuf
 * spec "Enum Behavior"); an open (proto3) enum keeps the number.
 */
function isUnknownClosedEnum(field: protobuf.Field, v: unknown): boolean {
  const t = field.resolvedType;
  if (t === null || !isEnum(t)) return false;
  const features = (t as unknown as { _features?: { enum_type?: string } })._features;
  return features?.enum_type === 'CLOSED' && t.valuesById[v as number] === undefined;
}

function isEnum(t: protobuf.Type | protobuf.Enum): t is protobuf.Enum {
  return !('fieldsArray' in t);
}

/** The zero value of a scalar field in raw form. */
function scalarDefault(field: protobuf.Field): unknown {
  if (field.resolvedType !== null) return 0;
  switch (field.type) {
    case 'int64':
    case 'uint64':
    case 'sint64':
    case 'fixed64':
    case 'sfixed64':
      return '0';
    case 'bool':
      return false;
    case 'string':
    case 'bytes':
      return '';
    default:
      return 0;
  }
}

function defaultOf(field: protobuf.Field): unknown {
  const t = field.resolvedType;
  if (t !== null && !isEnum(t)) return { type: t, values: new Map() } satisfies MessageSlots;
  return scalarDefault(field);
}

function isZero(v: unknown): boolean {
  return v === false || v === '' || v === '0' || (typeof v === 'number' && Object.is(v, 0));
}

/** Writes slots as protojson.Marshal does, then as the peer's util.Unmarshal reads that JSON back. */
export class ProtojsonRenderer {
  exactNumbers = false;

  constructor(readonly types: GRPCBodyTypes) {}

  message(slots: MessageSlots): unknown {
    const wkt = protojsonWellKnown(slots, this);
    if (wkt !== undefined) return wkt.value;
    const out: Record<string, unknown> = {};
    for (const field of slots.type.fieldsArray) {
      if (!slots.values.has(field)) continue;
      const raw = slots.values.get(field);
      // Implicit presence (proto3 scalars without `optional`): a zero value is not written.
      if (!field.repeated && isZero(raw) && !this.types.hasPresence(field)) continue;
      if (Array.isArray(raw) && raw.length === 0) continue; // an empty packed run

      defineKey(out, this.types.jsonName(slots.type, field), this.value(field, raw));
    }
    return out;
  }

  value(field: protobuf.Field, raw: unknown): unknown {
    if (this.types.isMapField(field)) {
      const valueField = (field.resolvedType as protobuf.Type).fieldsById[2] as protobuf.Field;
      const out: Record<string, unknown> = {};
      for (const [k, v] of raw as Map<unknown, unknown>) defineKey(out, String(k), this.single(valueField, v));
      return out;
    }
    if (field.repeated) return (raw as unknown[]).map((v) => this.single(field, v));
    return this.single(field, raw);
  }

  /** One value of a field; a message value is rendered recursively. */
  single(field: protobuf.Field, raw: unknown): unknown {
    const t = field.resolvedType;
    if (t !== null) {
      if (!isEnum(t)) return this.message(raw as MessageSlots);
      if (this.types.fullName(t) === 'google.protobuf.NullValue') return null;
      return t.valuesById[raw as number] ?? raw;
    }
    if (field.type === 'double') return this.float(raw as number, String(raw));
    if (field.type === 'float') return this.float(raw as number, float32Text(raw as number));
    return raw;
  }

  /** protojson: NaN and the infinities are strings; -0 is written "-0", which a double would lose. */
  float(v: number, text: string): unknown {
    if (Number.isNaN(v)) return 'NaN';
    if (v === Infinity) return 'Infinity';
    if (v === -Infinity) return '-Infinity';
    const n = Object.is(v, -0) ? new ExactNumber('-0') : numberFromLexeme(text);
    if (n instanceof ExactNumber) this.exactNumbers = true;
    return n;
  }
}

/** Go strconv.AppendFloat(v, 'g'-like, -1, 32): the shortest decimal that reads back as the same float32. */
function float32Text(v: number): string {
  for (let p = 1; p <= 9; p++) {
    const s = v.toPrecision(p);
    if (Math.fround(Number(s)) === v) return String(Number(s));
  }
  return String(v);
}

/** Sets a key without ever invoking a setter (`__proto__` is a legal json_name). */
export function defineKey(o: Record<string, unknown>, k: string, v: unknown): void {
  if (k === '__proto__') Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  else o[k] = v;
}
