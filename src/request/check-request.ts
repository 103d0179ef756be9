import type { VerdictError } from '../errors';
import type { ExactNumber } from './exact-number';

/**
 * envoy.service.auth.v3.CheckRequest in the shape opa-envoy-plugin gives a policy (envoyauth/protomap.go):
 * JSON field names, only set fields, int64 and Timestamp parts as numbers (ExactNumber past 2^53), enums
 * as numbers, bytes as base64, Struct as plain JSON. check-request-decoder.ts produces it from wire bytes;
 * `input.attributes` is this object's `attributes`, unchanged.
 */
export type JSONInteger = number | ExactNumber;

export interface SocketAddress {
  /** SocketAddress.Protocol: 1 = UDP; TCP (0) is absent. */
  protocol?: number;
  address?: string;
  portValue?: number;
  namedPort?: string;
  resolverName?: string;
  ipv4Compat?: boolean;
}

export interface Address {
  socketAddress?: SocketAddress;
  pipe?: { path?: string; mode?: number };
  envoyInternalAddress?: { serverListenerName?: string; endpointId?: string };
}

export interface Peer {
  address?: Address;
  service?: string;
  labels?: Record<string, string>;
  principal?: string;
  /** URL-encoded PEM. */
  certificate?: string;
}

export interface HeaderValue {
  key?: string;
  value?: string;
  /** base64 of the raw bytes (Envoy's `encode_raw_headers`). */
  rawValue?: string;
}

export interface HttpRequest {
  id?: string;
  method?: string;
  headers?: Record<string, string>;
  headerMap?: { headers?: HeaderValue[] };
  path?: string;
  host?: string;
  scheme?: string;
  query?: string;
  fragment?: string;
  size?: JSONInteger;
  protocol?: string;
  body?: string;
  /** base64 (proto bytes). */
  rawBody?: string;
}

/** google.protobuf.Timestamp as protomap leaves it (not RFC 3339): zero parts are absent. */
export interface ProtoTimestamp {
  seconds?: JSONInteger;
  nanos?: number;
}

export interface ProtoMetadata {
  /** Struct values as plain JSON. */
  filterMetadata?: Record<string, Record<string, unknown>>;
  /** google.protobuf.Any as protomap leaves it: `{typeUrl, value}` with value in base64. */
  typedFilterMetadata?: Record<string, { typeUrl?: string; value?: string }>;
}

export interface AttributeContext {
  source?: Peer;
  destination?: Peer;
  request?: { time?: ProtoTimestamp; http?: HttpRequest };
  contextExtensions?: Record<string, string>;
  metadataContext?: ProtoMetadata;
  routeMetadataContext?: ProtoMetadata;
  tlsSession?: { sni?: string };
}

export interface CheckRequest {
  attributes?: AttributeContext;
}

/** What a transport's request deserializer hands to the pipeline (see decodeCheckRequest). */
export interface ReceivedCheckRequest {
  /** The decoded request; null when it was refused before or while decoding (then `refusal` says why). */
  message: CheckRequest | null;
  /** Size of the message as received, in bytes. */
  wireBytes: number;
  /** The coded reason `message` is null (ERR_REQUEST_TOO_LARGE, ERR_REQUEST_MALFORMED, …). */
  refusal?: VerdictError;
  /** True when `message` holds an ExactNumber (an int64 past 2^53). */
  exactNumbers?: boolean;
}
