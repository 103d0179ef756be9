/**
 * The parts of envoy.service.auth.v3.CheckRequest verdict reads, as decoded by proto-loader with
 * camelCase names, longs/enums/bytes as strings and no defaults (close to protojson already).
 */
export interface SocketAddress {
  address?: string;
  portValue?: number;
  protocol?: string;
}

export interface Peer {
  address?: { socketAddress?: SocketAddress; pipe?: { path?: string } };
  service?: string;
  labels?: Record<string, string>;
  principal?: string;
  certificate?: string;
}

export interface HttpRequest {
  id?: string;
  method?: string;
  headers?: Record<string, string>;
  headerMap?: { headers?: { key?: string; value?: string; rawValue?: string }[] };
  path?: string;
  host?: string;
  scheme?: string;
  query?: string;
  fragment?: string;
  size?: string;
  protocol?: string;
  body?: string;
  /** base64 (proto bytes) */
  rawBody?: string;
}

export interface ProtoTimestamp {
  seconds?: string;
  nanos?: number;
}

export interface ProtoStruct {
  fields?: Record<string, ProtoValue>;
}

export interface ProtoValue {
  nullValue?: string;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: ProtoStruct;
  listValue?: { values?: ProtoValue[] };
}

export interface ProtoMetadata {
  filterMetadata?: Record<string, ProtoStruct>;
  typedFilterMetadata?: Record<string, { typeUrl?: string; value?: string }>;
}

export interface AttributeContext {
  source?: Peer;
  destination?: Peer;
  request?: { time?: ProtoTimestamp | string; http?: HttpRequest };
  contextExtensions?: Record<string, string>;
  metadataContext?: ProtoMetadata;
  routeMetadataContext?: ProtoMetadata;
  tlsSession?: { sni?: string };
}

export interface CheckRequest {
  attributes?: AttributeContext;
}

/** What the gRPC deserializer hands to the handler: the decoded message and its wire size. */
export interface ReceivedCheckRequest {
  /** null when the message was refused before decoding (too large). */
  message: CheckRequest | null;
  wireBytes: number;
}
