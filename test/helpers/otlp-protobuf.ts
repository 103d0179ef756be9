import protobuf from 'protobufjs';

/** The OTLP JSON shape (OTLP spec, "JSON Protobuf Encoding": ids as hex, enums as numbers) otlp-receiver.ts reads. */
export interface OTLPJSONValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
}
export interface OTLPJSONSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: { key: string; value: OTLPJSONValue }[];
  status?: { code?: number; message?: string };
}
export interface OTLPJSONBody {
  resourceSpans?: {
    resource?: { attributes?: { key: string; value: OTLPJSONValue }[] };
    scopeSpans?: { spans?: OTLPJSONSpan[] }[];
  }[];
}

/**
 * The part of opentelemetry-proto's trace messages a test reads (field numbers from
 * opentelemetry/proto/{collector/trace,trace,common,resource}/v1/*.proto). Envoy's OpenTelemetry tracer
 * sends OTLP/HTTP as binary protobuf (`application/x-protobuf`), not JSON.
 */
const root = protobuf.Root.fromJSON({
  nested: {
    ExportTraceServiceRequest: { fields: { resourceSpans: { rule: 'repeated', type: 'ResourceSpans', id: 1 } } },
    ResourceSpans: { fields: { resource: { type: 'Resource', id: 1 }, scopeSpans: { rule: 'repeated', type: 'ScopeSpans', id: 2 } } },
    Resource: { fields: { attributes: { rule: 'repeated', type: 'KeyValue', id: 1 } } },
    ScopeSpans: { fields: { spans: { rule: 'repeated', type: 'Span', id: 2 } } },
    Span: {
      fields: {
        traceId: { type: 'bytes', id: 1 },
        spanId: { type: 'bytes', id: 2 },
        parentSpanId: { type: 'bytes', id: 4 },
        name: { type: 'string', id: 5 },
        kind: { type: 'int32', id: 6 },
        attributes: { rule: 'repeated', type: 'KeyValue', id: 9 },
        status: { type: 'Status', id: 15 },
      },
    },
    Status: { fields: { message: { type: 'string', id: 2 }, code: { type: 'int32', id: 3 } } },
    KeyValue: { fields: { key: { type: 'string', id: 1 }, value: { type: 'AnyValue', id: 2 } } },
    AnyValue: {
      fields: {
        stringValue: { type: 'string', id: 1 },
        boolValue: { type: 'bool', id: 2 },
        intValue: { type: 'int64', id: 3 },
        doubleValue: { type: 'double', id: 4 },
      },
    },
  },
});
const request = root.lookupType('ExportTraceServiceRequest');

/** Decodes an OTLP/HTTP protobuf body into the JSON encoding's shape (ids as lower-case hex). */
export function decodeOTLPTraceProtobuf(bytes: Buffer): OTLPJSONBody {
  const body = request.toObject(request.decode(bytes), { longs: String, bytes: Buffer, defaults: false }) as OTLPJSONBody & {
    resourceSpans?: {
      scopeSpans?: { spans?: (Omit<OTLPJSONSpan, 'traceId' | 'spanId' | 'parentSpanId'> & Record<string, unknown>)[] }[];
    }[];
  };
  for (const rs of body.resourceSpans ?? [])
    for (const ss of rs.scopeSpans ?? [])
      for (const s of ss.spans ?? []) {
        for (const id of ['traceId', 'spanId', 'parentSpanId'] as const) {
          const raw = s[id] as Buffer | undefined;
          if (raw === undefined || raw.length === 0) delete s[id];
          else s[id] = raw.toString('hex');
        }
      }
  return body;
}
