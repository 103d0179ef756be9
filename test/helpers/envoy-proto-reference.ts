import protobuf from 'protobufjs';
import descriptorJSON from 'protobufjs/google/protobuf/descriptor.json';
import { ExactNumber } from '../../src/request/exact-number';
import { envoyProtoIncludeDirs } from '../../src/server/envoy-protos';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A reference for verdict's hand-written CheckRequest decoder: the Envoy protos loaded by protobufjs
 * reflection (independent of src/request/check-request-schema.ts), a generator of requests with every
 * field set, and a converter that applies opa-envoy-plugin's protomap rules (envoyauth/protomap.go) to the
 * generated object — only set fields, JSON names, int64 as numbers, enums as numbers, bytes as base64,
 * Struct as plain JSON.
 */
export function loadCheckRequestType(): protobuf.Type {
  // The Envoy protos import google/protobuf/descriptor.proto (for options); protobufjs ships it as JSON
  // but, unlike its other well-known types, does not register it (proto-loader does, when it is loaded).
  protobuf.common('descriptor', descriptorJSON.nested.google.nested.protobuf.nested as protobuf.INamespace);
  const root = new protobuf.Root();
  const dirs = envoyProtoIncludeDirs();
  root.resolvePath = (_origin, target) => {
    for (const d of dirs) {
      const p = join(d, target);
      if (existsSync(p)) return p;
    }
    return target;
  };
  root.loadSync('envoy/service/auth/v3/external_auth.proto', { keepCase: true });
  root.resolveAll();
  return root.lookupType('envoy.service.auth.v3.CheckRequest');
}

// protobufjs ships google/protobuf/*.proto itself, loaded with camelCase names: the Struct parts are spelled so.

/** protoc's json_name: underscores removed, the letter after each one upper-cased. */
export function jsonName(protoName: string): string {
  return protoName.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

const STRUCT_DEPTH = 2;

/**
 * One request per `variant`: every field set, and in every oneof the member `variant % members` (so a
 * few variants together set every member). Scalars get non-default values that stress the rules: int64
 * past 2^53 on odd variants, negative int32s, 32-bit uint32s, non-ASCII strings, bytes with 0xff.
 */
export function generate(type: protobuf.Type, variant: number, depth = 0): Record<string, unknown> {
  if (type.fullName === '.google.protobuf.Struct') return generateStruct(variant, depth);
  const out: Record<string, unknown> = {};
  const chosen = new Set<string>();
  for (const oneof of type.oneofsArray) {
    const member = oneof.fieldsArray[variant % oneof.fieldsArray.length];
    if (member) chosen.add(member.name);
  }
  for (const f of type.fieldsArray) {
    if (f.partOf && !chosen.has(f.name)) continue;
    if (f.map) {
      const mf = f as unknown as protobuf.MapField;
      out[f.name] = {
        [`k1_${f.name}`]: sample(f, mf.resolvedType, mf.type, variant, depth),
        'k2 é': sample(f, mf.resolvedType, mf.type, variant + 1, depth),
      };
    } else if (f.repeated)
      out[f.name] = [sample(f, f.resolvedType, f.type, variant, depth), sample(f, f.resolvedType, f.type, variant + 1, depth)];
    else out[f.name] = sample(f, f.resolvedType, f.type, variant, depth);
  }
  return out;
}

function generateStruct(variant: number, depth: number): Record<string, unknown> {
  const fields: Record<string, unknown> = {
    s: { stringValue: `str ${variant} ü` },
    n: { numberValue: variant + 0.5 },
    b: { boolValue: true },
    z: { nullValue: 0 },
  };
  if (depth < STRUCT_DEPTH) {
    fields.o = { structValue: generateStruct(variant, depth + 1) };
    fields.l = { listValue: { values: [{ numberValue: -1 }, { stringValue: 'x' }, { structValue: generateStruct(variant, depth + 1) }] } };
  }
  return { fields };
}

function sample(f: protobuf.Field, resolved: protobuf.ReflectionObject | null, typeName: string, variant: number, depth: number): unknown {
  if (resolved instanceof protobuf.Type) return generate(resolved, variant, depth + 1);
  if (resolved instanceof protobuf.Enum) {
    const values = Object.values(resolved.values).filter((v) => v !== 0);
    return values[variant % Math.max(1, values.length)] ?? 1;
  }
  const big = variant % 2 === 1;
  switch (typeName) {
    case 'string':
      return `${f.name} v${variant} é ✓`;
    case 'bytes':
      return Buffer.from([variant, 1, 2, 0xff]);
    case 'bool':
      return true;
    case 'int64':
    case 'sint64':
    case 'sfixed64':
      return big ? '9223372036854775807' : String(-5 - variant);
    case 'uint64':
    case 'fixed64':
      return big ? '18446744073709551615' : String(7 + variant);
    case 'int32':
    case 'sint32':
    case 'sfixed32':
      return -7 - variant;
    case 'uint32':
    case 'fixed32':
      return big ? 4000000000 : 9 + variant;
    case 'double':
    case 'float':
      return 2.5 + variant;
    default:
      throw new TypeError(`no sample for ${typeName}`);
  }
}

/** The generated object by opa-envoy-plugin's protomap rules (what a policy must see). */
export function expectedByPeerRules(type: protobuf.Type, value: Record<string, unknown>): Record<string, unknown> {
  if (type.fullName === '.google.protobuf.Struct') return structAsMap(value);
  const out: Record<string, unknown> = {};
  for (const f of type.fieldsArray) {
    const v = value[f.name];
    if (v === undefined) continue;
    const name = jsonName(f.name);
    if (f.map) {
      const mf = f as unknown as protobuf.MapField;
      const m: Record<string, unknown> = {};
      for (const [k, item] of Object.entries(v as Record<string, unknown>)) m[k] = convert(mf.resolvedType, mf.type, item);
      if (Object.keys(m).length > 0) out[name] = m;
    } else if (f.repeated) {
      const list = (v as unknown[]).map((item) => convert(f.resolvedType, f.type, item));
      if (list.length > 0) out[name] = list;
    } else {
      const c = convert(f.resolvedType, f.type, v);
      // Implicit presence: zero values are absent, unless the field is the set member of a oneof.
      if (f.partOf || f.resolvedType instanceof protobuf.Type || !isZero(c)) out[name] = c;
    }
  }
  return out;
}

function convert(resolved: protobuf.ReflectionObject | null, typeName: string, v: unknown): unknown {
  if (resolved instanceof protobuf.Type) return expectedByPeerRules(resolved, v as Record<string, unknown>);
  if (resolved instanceof protobuf.Enum) return v as number;
  if (typeName === 'bytes') return (v as Buffer).toString('base64');
  if (typeof v === 'string' && /64$/.test(typeName)) {
    const n = Number(v);
    return Number.isSafeInteger(n) ? n : new ExactNumber(BigInt(v).toString());
  }
  return v;
}

function structAsMap(s: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries((s.fields ?? {}) as Record<string, Record<string, unknown>>)) out[k] = valueAsInterface(v);
  return out;
}

function valueAsInterface(v: Record<string, unknown>): unknown {
  if ('structValue' in v) return structAsMap(v.structValue as Record<string, unknown>);
  if ('listValue' in v) return ((v.listValue as { values?: Record<string, unknown>[] }).values ?? []).map(valueAsInterface);
  if ('stringValue' in v) return v.stringValue;
  if ('numberValue' in v) return v.numberValue;
  if ('boolValue' in v) return v.boolValue;
  return null;
}

function isZero(v: unknown): boolean {
  return v === '' || v === 0 || v === false;
}

/** Every (message, field) reachable from `type`, for the coverage assertion. */
export function reachableFields(type: protobuf.Type, seen = new Set<string>()): string[] {
  if (seen.has(type.fullName) || type.fullName.startsWith('.google.protobuf.')) return [];
  seen.add(type.fullName);
  const out: string[] = [];
  for (const f of type.fieldsArray) {
    out.push(`${type.fullName}.${f.name}`);
    const t = f.resolvedType;
    if (t instanceof protobuf.Type) out.push(...reachableFields(t, seen));
  }
  return out;
}
