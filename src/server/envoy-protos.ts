import { dirname, join } from 'node:path';
import type * as ProtoLoader from '@grpc/proto-loader';

/** Decode options: protojson-like names and scalars; no defaults (halves decode time, matches protojson). */
export const PROTO_OPTIONS = Object.freeze({
  keepCase: false,
  longs: String,
  enums: String,
  bytes: String,
  defaults: false,
  oneofs: false,
});

/** Envoy's API protos ship in @grpc/grpc-js-xds; verdict copies none of them. */
export function envoyProtoIncludeDirs(): string[] {
  const root = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
  return ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(root, d));
}

let cached: ProtoLoader.PackageDefinition | undefined;

/**
 * envoy.service.auth.v3 (Check) — loaded once per process (~140 ms), and only by what needs the
 * descriptors (reflection, tests, benches): the Check edge decodes by hand, so serving loads neither
 * proto-loader nor protobufjs (docs/memory.md).
 */
export function loadAuthorizationProtos(): ProtoLoader.PackageDefinition {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on demand; see above
  const { loadSync } = require('@grpc/proto-loader') as typeof ProtoLoader;
  cached ??= loadSync('envoy/service/auth/v3/external_auth.proto', { ...PROTO_OPTIONS, includeDirs: envoyProtoIncludeDirs() });
  return cached;
}

export const AUTHORIZATION_SERVICE = 'envoy.service.auth.v3.Authorization';
