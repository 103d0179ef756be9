import http2, { type ClientHttp2Session, type ClientHttp2Stream, type OutgoingHttpHeaders } from 'node:http2';
import type { SecureClientSessionOptions } from 'node:http2';
import { authorizationClientClass } from './verdict-harness';
import type * as grpc from '@grpc/grpc-js';

/**
 * A hand-driven HTTP/2 client for transport conformance tests: it writes exactly the frames a case needs
 * (broken prefixes, two messages, missing END_STREAM, resets), which no gRPC client library will produce.
 */
export interface RawAnswer {
  /** The first HEADERS block (for Trailers-Only, it carries grpc-status too). */
  headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader;
  /** DATA bytes received, concatenated. */
  data: Buffer;
  trailers: http2.IncomingHttpHeaders | null;
  /** grpc-status from trailers, or from the headers of a Trailers-Only answer. */
  grpcStatus: number | null;
  grpcMessage: string | null;
  /** RST_STREAM code when the server reset the stream; 0 when it ended normally. */
  rstCode: number;
  /** True when status came in the first (only) HEADERS frame: Trailers-Only. */
  trailersOnly: boolean;
}

export function connectRaw(authority: string, tls?: SecureClientSessionOptions): ClientHttp2Session {
  const session = http2.connect(authority, tls ?? {});
  session.on('error', () => undefined);
  return session;
}

export const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';

export function grpcHeaders(path: string, extra: OutgoingHttpHeaders = {}): OutgoingHttpHeaders {
  return { ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...extra };
}

/** Length-Prefixed-Message with the given compressed flag (0 unless a case says otherwise). */
export function lpm(message: Buffer, flag = 0, declaredLength = message.length): Buffer {
  const prefix = Buffer.alloc(5);
  prefix[0] = flag;
  prefix.writeUInt32BE(declaredLength, 1);
  return Buffer.concat([prefix, message]);
}

/** Opens a stream; `drive` writes to it (and ends it, or not); resolves with everything the server sent. */
export function rawCall(
  session: ClientHttp2Session,
  headers: OutgoingHttpHeaders,
  drive: (s: ClientHttp2Stream) => void,
): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const stream = session.request(headers, { endStream: false });
    const chunks: Buffer[] = [];
    let first: RawAnswer['headers'] | null = null;
    let trailers: http2.IncomingHttpHeaders | null = null;
    stream.on('response', (h) => (first = h));
    stream.on('trailers', (t) => (trailers = t));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', () => undefined);
    stream.on('close', () => {
      const h = (first ?? {}) as RawAnswer['headers'];
      const source = trailers ?? h;
      const status = source['grpc-status'];
      resolve({
        headers: h,
        data: Buffer.concat(chunks),
        trailers,
        grpcStatus: status === undefined ? null : Number(status),
        grpcMessage: (source['grpc-message'] as string | undefined) ?? null,
        rstCode: stream.rstCode ?? 0,
        trailersOnly: trailers === null && h['grpc-status'] !== undefined,
      });
    });
    drive(stream);
  });
}

let checkMethod: grpc.MethodDefinition<unknown, unknown> | undefined;
function check(): grpc.MethodDefinition<unknown, unknown> {
  checkMethod ??= (authorizationClientClass().service as grpc.ServiceDefinition).Check as grpc.MethodDefinition<unknown, unknown>;
  return checkMethod;
}

/** A CheckRequest (proto-loader object form) encoded the way a real client does. */
export function encodeCheckRequest(request: unknown): Buffer {
  return check().requestSerialize(request);
}

/** A CheckResponse decoded by protobufjs reflection (proto-loader), the reference decoder. */
export function decodeCheckResponse(bytes: Buffer): Record<string, unknown> {
  return check().responseDeserialize(bytes) as Record<string, unknown>;
}
