import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import type { ReceivedCheckRequest } from '../request/check-request';
import { AUTHORIZATION_SERVICE, loadAuthorizationProtos } from './envoy-protos';

/**
 * Turns one whole, size-checked CheckRequest message into what the pipeline reads. Pluggable: the server
 * takes any function of this shape (a hand-written decoder replaces this reference one). It never throws:
 * bytes that are not a CheckRequest decode to an empty message, which the pipeline denies as malformed.
 */
export type CheckRequestDecoder = (buf: Buffer) => ReceivedCheckRequest;

/** The reference decoder: proto-loader (protobufjs reflection) over Envoy's protos, loaded once. */
export function protoLoaderCheckRequestDecoder(): CheckRequestDecoder {
  const check = (loadAuthorizationProtos()[AUTHORIZATION_SERVICE] as ServiceDefinition).Check as MethodDefinition<unknown, unknown>;
  const decode = check.requestDeserialize;
  return (buf) => {
    try {
      return { message: decode(buf) as ReceivedCheckRequest['message'], wireBytes: buf.length };
    } catch {
      return { message: {}, wireBytes: buf.length };
    }
  };
}
