import type { AttributeContext, ProtoMetadata, ProtoStruct, ProtoTimestamp, ProtoValue } from './check-request';

/**
 * proto-loader leaves three well-known types in their message form; protojson (what opa-envoy-plugin feeds
 * Rego) writes them as JSON. Only the places AttributeContext can hold them are converted.
 */
export function attributesToProtoJSON(attrs: AttributeContext): Record<string, unknown> {
  const out: Record<string, unknown> = { ...attrs };
  const time = attrs.request?.time;
  if (attrs.request && time !== undefined && typeof time === 'object') {
    out.request = { ...attrs.request, time: timestampToRFC3339(time) };
  }
  if (attrs.metadataContext) out.metadataContext = metadataToJSON(attrs.metadataContext);
  if (attrs.routeMetadataContext) out.routeMetadataContext = metadataToJSON(attrs.routeMetadataContext);
  return out;
}

/** protojson Timestamp: RFC 3339, UTC, with 0, 3, 6 or 9 fractional digits. */
export function timestampToRFC3339(ts: ProtoTimestamp): string {
  const seconds = Number(ts.seconds ?? 0);
  const nanos = ts.nanos ?? 0;
  const base = new Date(seconds * 1000).toISOString().slice(0, 19);
  if (nanos === 0) return `${base}Z`;
  let frac = String(nanos).padStart(9, '0');
  if (frac.endsWith('000000')) frac = frac.slice(0, 3);
  else if (frac.endsWith('000')) frac = frac.slice(0, 6);
  return `${base}.${frac}Z`;
}

export function structToJSON(s: ProtoStruct): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s.fields ?? {})) out[k] = valueToJSON(v);
  return out;
}

function valueToJSON(v: ProtoValue): unknown {
  if (v.structValue !== undefined) return structToJSON(v.structValue);
  if (v.listValue !== undefined) return (v.listValue.values ?? []).map(valueToJSON);
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.numberValue !== undefined) return v.numberValue;
  if (v.boolValue !== undefined) return v.boolValue;
  return null;
}

function metadataToJSON(m: ProtoMetadata): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (m.filterMetadata) {
    const fm: Record<string, unknown> = {};
    for (const [k, s] of Object.entries(m.filterMetadata)) fm[k] = structToJSON(s);
    out.filterMetadata = fm;
  }
  if (m.typedFilterMetadata) {
    // Any needs a type registry to expand; verdict passes its type URL and base64 value.
    const tm: Record<string, unknown> = {};
    for (const [k, a] of Object.entries(m.typedFilterMetadata)) tm[k] = { '@type': a.typeUrl ?? '', value: a.value ?? '' };
    out.typedFilterMetadata = tm;
  }
  return out;
}

/** JSON value → google.protobuf.Struct in proto-loader's object form (for dynamic_metadata). */
export function jsonToStruct(obj: Record<string, unknown>): ProtoStruct {
  const fields: Record<string, ProtoValue> = {};
  for (const [k, v] of Object.entries(obj)) fields[k] = jsonToValue(v);
  return { fields };
}

function jsonToValue(v: unknown): ProtoValue {
  if (v === null || v === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(jsonToValue) } };
  return { structValue: jsonToStruct(v as Record<string, unknown>) };
}
