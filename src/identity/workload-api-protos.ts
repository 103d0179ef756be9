import type * as grpc from '@grpc/grpc-js';
import type * as ProtoLoader from '@grpc/proto-loader';
import { join } from 'node:path';
import { packageRoot } from '../package-root';
import { grpcJs } from '../telemetry/grpc-log';

/**
 * A proto file of verdict's own `proto/` directory as grpc-js service definitions; bytes stay Buffers.
 * Loaded on demand, not at start: only a configured socket needs it (docs/memory.md).
 */
export function loadPackagedProto(file: string): grpc.GrpcObject {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on demand
  const { loadSync } = require('@grpc/proto-loader') as typeof ProtoLoader;
  const defs = loadSync(file, {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    includeDirs: [join(packageRoot(), 'proto')],
  });
  return grpcJs().loadPackageDefinition(defs);
}

/** proto/workload.proto (the SPIFFE Workload API, written from the spec). */
export function loadWorkloadAPIClientConstructor(): grpc.ServiceClientConstructor {
  return (loadPackagedProto('workload.proto') as unknown as { SpiffeWorkloadAPI: grpc.ServiceClientConstructor }).SpiffeWorkloadAPI;
}

/** Workload API §3 (Transport): every request carries this metadata, so a browser or proxy cannot forge calls. */
export function workloadAPIMetadata(): grpc.Metadata {
  const md = new (grpcJs().Metadata)();
  md.set('workload.spiffe.io', 'true');
  return md;
}

/**
 * Both of verdict's SPIRE agent clients (the Workload API, the Delegated Identity API): the agent answers a new
 * stream at once (its cache, or an empty set), so a stream silent this long is an agent that is wedged.
 */
export const AGENT_FIRST_MESSAGE_TIMEOUT_MS = 30_000;

/**
 * Channel options that see an agent frozen after it delivered: a stream sends nothing while nothing changes,
 * so a frozen agent looks like a quiet one; an unanswered PING closes the connection (the streams go down).
 * The interval stays above grpc-go's enforcement minimum of 5 minutes, below which the agent closes the
 * connection itself.
 */
export function agentKeepaliveOptions(timeMs = 360_000): Record<string, number> {
  return { 'grpc.keepalive_time_ms': timeMs, 'grpc.keepalive_timeout_ms': Math.min(20_000, timeMs) };
}

/** SPIFFE Workload Endpoint §4: `unix:///path` or `unix:/path` (and a bare path for convenience) → grpc-js target. */
export function workloadAPITarget(socket: string): string {
  if (socket.startsWith('unix://')) return `unix:${socket.slice('unix://'.length)}`;
  if (socket.startsWith('unix:') || socket.startsWith('tcp:')) return socket.replace(/^tcp:\/\//, '');
  return `unix:${socket}`;
}

export interface X509SVIDMessage {
  spiffe_id: string;
  x509_svid: Buffer;
  x509_svid_key: Buffer;
  bundle: Buffer;
  hint: string;
}
export interface X509SVIDResponse {
  svids: X509SVIDMessage[];
  federated_bundles: Record<string, Buffer>;
}
export interface X509BundlesResponse {
  bundles: Record<string, Buffer>;
}
export interface JWTBundlesResponse {
  bundles: Record<string, Buffer>;
}
export interface JWTSVIDResponse {
  svids: { spiffe_id: string; svid: string; hint: string }[];
}
export interface ValidateJWTSVIDResponse {
  spiffe_id: string;
  claims: unknown;
}
