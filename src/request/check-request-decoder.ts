import { VerdictError } from '../errors';
import type { CheckRequest, ReceivedCheckRequest } from './check-request';
import type { CheckRequestLimits, DecodeState } from './check-request-decode-runtime';
import { HEADER_FIELDS, readCheckRequest } from './check-request-decoder.generated';
import { ProtoWireReader, malformed } from './proto-wire-reader';

export type { CheckRequestLimits } from './check-request-decode-runtime';

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
 * The per-message code is generated from check-request-schema.ts (check-request-codegen.ts); the shared
 * parts (map entries, Struct, bounds) are in check-request-decode-runtime.ts.
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
  const headerEntries = new Array<number>(HEADER_FIELDS).fill(0);
  const state: DecodeState = { limits, fieldsLeft: limits.maxRequestFields, exactNumbers: false, headerEntries };
  try {
    const message = readCheckRequest(new ProtoWireReader(buf, 0, wireBytes), undefined, 1, state) as CheckRequest;
    return { message, wireBytes, exactNumbers: state.exactNumbers };
  } catch (err) {
    const refusal = err instanceof VerdictError ? err : malformed((err as Error).message);
    return { message: null, wireBytes, refusal };
  }
}
