/**
 * The field tables of envoy.service.auth.v3.CheckRequest and every message it reaches, written by hand from
 * the Envoy API protos (@grpc/grpc-js-xds deps/envoy-api: service/auth/v3/{external_auth,attribute_context}.proto,
 * config/core/v3/{address,base}.proto) and google/protobuf/{timestamp,struct,any}.proto. `json` is the field's
 * protobuf JSON name (lowerCamelCase), which opa-envoy-plugin's protomap uses as the input key.
 * test/unit/request/check-request-reference.test.ts compares these tables with the protos through protobufjs
 * reflection, so a field Envoy adds cannot be dropped without a failing test.
 */

export type ScalarKind = 'string' | 'bytes' | 'int64' | 'uint64' | 'int32' | 'uint32' | 'bool' | 'enum';

export interface MessageSpec {
  /** Full protobuf name, for errors and the reference test. */
  readonly name: string;
  /** Indexed by field number. */
  readonly fields: readonly (FieldSpec | undefined)[];
  /** Indexed by field number: the JSON names of the other members of that field's oneof (set one, clear them). */
  readonly oneofSiblings?: readonly (readonly string[] | undefined)[];
}

export type FieldSpec =
  | { readonly json: string; readonly kind: ScalarKind; readonly oneof?: string }
  | { readonly json: string; readonly kind: 'message'; readonly type: () => MessageSpec; readonly oneof?: string }
  /** google.protobuf.Struct: opa-envoy-plugin calls its AsMap(), so it becomes plain JSON. */
  | { readonly json: string; readonly kind: 'struct' }
  | { readonly json: string; readonly kind: 'repeated'; readonly type: () => MessageSpec; readonly countsAsHeader?: true }
  /** map<string, V>: keys are strings in every map a CheckRequest has. */
  | {
      readonly json: string;
      readonly kind: 'map';
      readonly value: 'string' | 'struct' | (() => MessageSpec);
      readonly countsAsHeader?: true;
    };

function message(name: string, fields: Record<number, FieldSpec>): MessageSpec {
  const table: (FieldSpec | undefined)[] = [];
  const siblings: string[][] = [];
  const all = Object.values(fields);
  for (const [n, f] of Object.entries(fields)) {
    table[Number(n)] = f;
    const group = 'oneof' in f ? f.oneof : undefined;
    if (group !== undefined) siblings[Number(n)] = all.filter((o) => o !== f && 'oneof' in o && o.oneof === group).map((o) => o.json);
  }
  return { name, fields: table, oneofSiblings: siblings };
}

const Timestamp = message('google.protobuf.Timestamp', {
  1: { json: 'seconds', kind: 'int64' },
  2: { json: 'nanos', kind: 'int32' },
});

const Any = message('google.protobuf.Any', {
  1: { json: 'typeUrl', kind: 'string' },
  2: { json: 'value', kind: 'bytes' },
});

const SocketAddress = message('envoy.config.core.v3.SocketAddress', {
  1: { json: 'protocol', kind: 'enum' },
  2: { json: 'address', kind: 'string' },
  3: { json: 'portValue', kind: 'uint32', oneof: 'port_specifier' },
  4: { json: 'namedPort', kind: 'string', oneof: 'port_specifier' },
  5: { json: 'resolverName', kind: 'string' },
  6: { json: 'ipv4Compat', kind: 'bool' },
});

const Pipe = message('envoy.config.core.v3.Pipe', {
  1: { json: 'path', kind: 'string' },
  2: { json: 'mode', kind: 'uint32' },
});

const EnvoyInternalAddress = message('envoy.config.core.v3.EnvoyInternalAddress', {
  1: { json: 'serverListenerName', kind: 'string', oneof: 'address_name_specifier' },
  2: { json: 'endpointId', kind: 'string' },
});

const Address = message('envoy.config.core.v3.Address', {
  1: { json: 'socketAddress', kind: 'message', type: () => SocketAddress, oneof: 'address' },
  2: { json: 'pipe', kind: 'message', type: () => Pipe, oneof: 'address' },
  3: { json: 'envoyInternalAddress', kind: 'message', type: () => EnvoyInternalAddress, oneof: 'address' },
});

const Metadata = message('envoy.config.core.v3.Metadata', {
  1: { json: 'filterMetadata', kind: 'map', value: 'struct' },
  2: { json: 'typedFilterMetadata', kind: 'map', value: () => Any },
});

const HeaderValue = message('envoy.config.core.v3.HeaderValue', {
  1: { json: 'key', kind: 'string' },
  2: { json: 'value', kind: 'string' },
  3: { json: 'rawValue', kind: 'bytes' },
});

const HeaderMap = message('envoy.config.core.v3.HeaderMap', {
  1: { json: 'headers', kind: 'repeated', type: () => HeaderValue, countsAsHeader: true },
});

const Peer = message('envoy.service.auth.v3.AttributeContext.Peer', {
  1: { json: 'address', kind: 'message', type: () => Address },
  2: { json: 'service', kind: 'string' },
  3: { json: 'labels', kind: 'map', value: 'string' },
  4: { json: 'principal', kind: 'string' },
  5: { json: 'certificate', kind: 'string' },
});

const HttpRequest = message('envoy.service.auth.v3.AttributeContext.HttpRequest', {
  1: { json: 'id', kind: 'string' },
  2: { json: 'method', kind: 'string' },
  3: { json: 'headers', kind: 'map', value: 'string', countsAsHeader: true },
  4: { json: 'path', kind: 'string' },
  5: { json: 'host', kind: 'string' },
  6: { json: 'scheme', kind: 'string' },
  7: { json: 'query', kind: 'string' },
  8: { json: 'fragment', kind: 'string' },
  9: { json: 'size', kind: 'int64' },
  10: { json: 'protocol', kind: 'string' },
  11: { json: 'body', kind: 'string' },
  12: { json: 'rawBody', kind: 'bytes' },
  13: { json: 'headerMap', kind: 'message', type: () => HeaderMap },
});

const Request = message('envoy.service.auth.v3.AttributeContext.Request', {
  1: { json: 'time', kind: 'message', type: () => Timestamp },
  2: { json: 'http', kind: 'message', type: () => HttpRequest },
});

const TLSSession = message('envoy.service.auth.v3.AttributeContext.TLSSession', {
  1: { json: 'sni', kind: 'string' },
});

const AttributeContext = message('envoy.service.auth.v3.AttributeContext', {
  1: { json: 'source', kind: 'message', type: () => Peer },
  2: { json: 'destination', kind: 'message', type: () => Peer },
  4: { json: 'request', kind: 'message', type: () => Request },
  10: { json: 'contextExtensions', kind: 'map', value: 'string' },
  11: { json: 'metadataContext', kind: 'message', type: () => Metadata },
  12: { json: 'tlsSession', kind: 'message', type: () => TLSSession },
  13: { json: 'routeMetadataContext', kind: 'message', type: () => Metadata },
});

export const CHECK_REQUEST_SPEC = message('envoy.service.auth.v3.CheckRequest', {
  1: { json: 'attributes', kind: 'message', type: () => AttributeContext },
});
