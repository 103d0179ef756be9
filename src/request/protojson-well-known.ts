import type * as protobuf from 'protobufjs';
import { VerdictError } from '../errors';
import type { MessageSlots, ProtojsonRenderer } from './parse-grpc-body';

const MAX_TIMESTAMP_SECONDS = 253402300799; // 9999-12-31T23:59:59Z
const MIN_TIMESTAMP_SECONDS = -62135596800; // 0001-01-01T00:00:00Z
const MAX_DURATION_SECONDS = 315576000000;

const WRAPPERS = new Set(
  ['Bool', 'Int32', 'Int64', 'UInt32', 'UInt64', 'Float', 'Double', 'String', 'Bytes'].map((w) => `google.protobuf.${w}Value`),
);

/**
 * The JSON forms protojson.Marshal gives well-known types (protobuf JSON mapping, "JSON Mapping" table;
 * Go encoding/protojson well_known_types.go). Returns undefined for any other message. `Any` is refused:
 * the peer resolves its type URL only against the types compiled into its own binary.
 */
export function protojsonWellKnown(slots: MessageSlots, render: ProtojsonRenderer): { value: unknown } | undefined {
  const name = render.types.fullName(slots.type);
  if (!name.startsWith('google.protobuf.')) return undefined;
  // By field number, as the wire is: descriptor sets may spell the names either way.
  const byId = (id: number): protobuf.Field | undefined => slots.type.fieldsById[id];
  const get = (id: number): unknown => {
    const f = byId(id);
    return f === undefined ? undefined : slots.values.get(f);
  };
  switch (name) {
    case 'google.protobuf.Timestamp':
      return { value: timestamp(Number(get(1) ?? '0'), Number(get(2) ?? 0)) };
    case 'google.protobuf.Duration':
      return { value: duration(BigInt((get(1) as string | undefined) ?? '0'), Number(get(2) ?? 0)) };
    case 'google.protobuf.Struct':
      return { value: struct(slots, render) };
    case 'google.protobuf.ListValue': {
      return { value: ((get(1) as MessageSlots[] | undefined) ?? []).map((v) => render.message(v)) };
    }
    case 'google.protobuf.Value':
      return { value: value(slots, render) };
    case 'google.protobuf.Any':
    case 'google.protobuf.FieldMask':
      throw new VerdictError('ERR_REQUEST_BODY_PARSE', `proto: ${name} in a gRPC body is not supported`);
    default: {
      if (!WRAPPERS.has(name)) return undefined;
      const f = byId(1) as protobuf.Field;
      const raw = slots.values.has(f) ? slots.values.get(f) : zeroOf(f);
      return { value: render.single(f, raw) };
    }
  }
}

function zeroOf(f: protobuf.Field): unknown {
  if (f.type === 'bool') return false;
  if (f.type === 'string' || f.type === 'bytes') return '';
  if (f.type.endsWith('64') && f.type !== 'double') return '0';
  return 0;
}

function timestamp(seconds: number, nanos: number): string {
  if (seconds < MIN_TIMESTAMP_SECONDS || seconds > MAX_TIMESTAMP_SECONDS) {
    throw new VerdictError('ERR_REQUEST_BODY_PARSE', `proto: google.protobuf.Timestamp: seconds out of range ${seconds}`);
  }
  if (nanos < 0 || nanos >= 1e9)
    throw new VerdictError('ERR_REQUEST_BODY_PARSE', `proto: google.protobuf.Timestamp: nanos out of range ${nanos}`);
  const base = new Date(seconds * 1000).toISOString().slice(0, 19); // whole seconds, years 0001–9999
  return `${base}${fraction(nanos)}Z`;
}

function duration(seconds: bigint, nanos: number): string {
  if (seconds < -BigInt(MAX_DURATION_SECONDS) || seconds > BigInt(MAX_DURATION_SECONDS)) {
    throw new VerdictError('ERR_REQUEST_BODY_PARSE', `proto: google.protobuf.Duration: seconds out of range ${seconds}`);
  }
  if (nanos <= -1e9 || nanos >= 1e9 || (seconds > 0n && nanos < 0) || (seconds < 0n && nanos > 0)) {
    throw new VerdictError('ERR_REQUEST_BODY_PARSE', `proto: google.protobuf.Duration: nanos out of range ${nanos}`);
  }
  const negative = seconds < 0n || nanos < 0;
  const abs = seconds < 0n ? -seconds : seconds;
  return `${negative ? '-' : ''}${abs}${fraction(Math.abs(nanos))}s`;
}

/** protojson writes 0, 3, 6 or 9 fractional digits: the fewest that keep the value. */
function fraction(nanos: number): string {
  if (nanos === 0) return '';
  const nine = String(nanos).padStart(9, '0');
  if (nanos % 1e6 === 0) return `.${nine.slice(0, 3)}`;
  if (nanos % 1e3 === 0) return `.${nine.slice(0, 6)}`;
  return `.${nine}`;
}

function struct(slots: MessageSlots, render: ProtojsonRenderer): unknown {
  const f = slots.type.fieldsById[1] as protobuf.Field;
  return render.value(f, slots.values.get(f) ?? new Map());
}

/** A Value is its one set kind; none set is an error in protojson; a non-finite number_value too. */
function value(slots: MessageSlots, render: ProtojsonRenderer): unknown {
  for (const [f, raw] of slots.values) {
    switch (f.id) {
      case 1: // null_value
        return null;
      case 2: // number_value
        if (!Number.isFinite(raw as number)) {
          throw new VerdictError('ERR_REQUEST_BODY_PARSE', `proto: google.protobuf.Value: invalid ${String(raw)} value`);
        }
        return render.float(raw as number, String(raw));
      case 3: // string_value
      case 4: // bool_value
        return raw;
      case 5: // struct_value
      case 6: // list_value
        return render.message(raw as MessageSlots);
    }
  }
  throw new VerdictError('ERR_REQUEST_BODY_PARSE', 'proto: google.protobuf.Value: none of the oneof fields is set');
}
