import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { AUTHORIZATION_SERVICE, loadAuthorizationProtos } from '../../src/server/envoy-protos';

/**
 * Writes a CheckRequest (proto-loader object form) as one gRPC Length-Prefixed-Message (gRPC over HTTP/2,
 * "Length-Prefixed-Message": flag byte 0, 4-byte big-endian length) to a temp file: h2load's -d body.
 */
export function writeFramedCheckRequest(request: unknown): string {
  const check = (loadAuthorizationProtos()[AUTHORIZATION_SERVICE] as grpc.ServiceDefinition).Check as grpc.MethodDefinition<
    unknown,
    unknown
  >;
  const message = check.requestSerialize(request);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  const file = join(mkdtempSync(join(tmpdir(), 'verdict-bench-')), 'check.bin');
  writeFileSync(file, Buffer.concat([prefix, message]));
  return file;
}
