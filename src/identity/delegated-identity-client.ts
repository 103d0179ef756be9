import type * as grpc from '@grpc/grpc-js';
import { VerdictError } from '../errors';
import { grpcJs } from '../telemetry/grpc-log';
import { parseSPIFFEID } from './spiffe-id';
import { AGENT_FIRST_MESSAGE_TIMEOUT_MS, agentKeepaliveOptions, loadPackagedProto, workloadAPITarget } from './workload-api-protos';

/** One X.509-SVID the agent would issue to the subscribed process: only its ID and expiry are kept. */
export interface DelegatedX509SVID {
  spiffeId: string;
  expiresAtMs: number;
}

export interface DelegatedStreamHandlers {
  /** Every message of the stream: the full set of the process's SVIDs (empty when no entry matches it). */
  update(svids: DelegatedX509SVID[]): void;
  /**
   * The stream is over and will not be retried by the client: ERR_DELEGATED_IDENTITY_REFUSED (PERMISSION_DENIED:
   * not an authorized delegate, or no identity for verdict), ERR_DELEGATED_IDENTITY_MALFORMED (an update did not
   * parse; the stream was cancelled), or ERR_DELEGATED_IDENTITY_STREAM (any other status, or the agent ended it).
   * Never called after `cancel()`.
   */
  down(err: VerdictError): void;
}

export interface DelegatedIdentityClientOptions {
  /** The agent's admin socket (`admin_socket_path`): `unix:///path`, `unix:/path` or a bare path. */
  socket: string;
  reconnectInitialMs: number;
  reconnectMaxMs: number;
  /** A stream whose first message has not come this long after it opened ends (ERR_DELEGATED_IDENTITY_STREAM). */
  firstMessageTimeoutMs?: number;
  /** HTTP/2 PING interval on the admin socket connection, to see an agent that froze after it answered. */
  keepaliveTimeMs?: number;
}

// A message carries every SVID of one process with its key and chain (a few KiB each): 1 MiB is hundreds of
// entries, and bounds what a broken agent can make verdict buffer per message.
const MAX_MESSAGE_BYTES = 1 << 20;
// gRPC details come from the agent: kept short in logs.
const MAX_DETAIL_CHARS = 200;

interface ResponseMessage {
  x509_svids: { x509_svid: { id: { trust_domain: string; path: string } | null; expires_at: string } | null }[];
}

/**
 * Client of SPIRE's agent Delegated Identity API (proto/spire-delegated-identity.proto): subscribes to the
 * X.509-SVIDs of another process by PID. The agent attests that PID itself and answers only if verdict's own
 * SPIFFE ID is one of its `authorized_delegates`. The caller owns the PID's lifetime: it must cancel the
 * stream when the PID exits (SPIRE's contract: a recycled PID would otherwise be answered for).
 * One channel for all streams; reconnecting a stream is the caller's decision (it knows whether the PID lives).
 */
export class DelegatedIdentityClient {
  private readonly client: grpc.Client;
  private readonly method: grpc.MethodDefinition<{ pid: number }, ResponseMessage>;
  private readonly firstMessageTimeoutMs: number;

  constructor(options: DelegatedIdentityClientOptions) {
    this.firstMessageTimeoutMs = options.firstMessageTimeoutMs ?? AGENT_FIRST_MESSAGE_TIMEOUT_MS;
    const Ctor = loadDelegatedIdentityClientConstructor();
    this.method = (Ctor.service as grpc.ServiceDefinition).SubscribeToX509SVIDs as grpc.MethodDefinition<{ pid: number }, ResponseMessage>;
    this.client = new Ctor(workloadAPITarget(options.socket), grpcJs().credentials.createInsecure(), {
      'grpc.initial_reconnect_backoff_ms': options.reconnectInitialMs,
      'grpc.max_reconnect_backoff_ms': options.reconnectMaxMs,
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      ...agentKeepaliveOptions(options.keepaliveTimeMs),
    });
  }

  subscribeX509SVIDs(pid: number, handlers: DelegatedStreamHandlers): { cancel(): void } {
    const call = this.client.makeServerStreamRequest(this.method.path, this.method.requestSerialize, this.method.responseDeserialize, {
      pid,
    });
    let over = false;
    const end = (err: VerdictError): void => {
      clearTimeout(silent);
      if (over) return;
      over = true;
      handlers.down(err);
    };
    // The agent answers at once (the process's SVIDs, or none): a stream silent past the bound is a wedged agent.
    const silent = setTimeout(() => {
      end(new VerdictError('ERR_DELEGATED_IDENTITY_STREAM', `the agent sent no message within ${this.firstMessageTimeoutMs} ms`));
      call.cancel();
    }, this.firstMessageTimeoutMs);
    silent.unref();
    call.on('data', (msg: ResponseMessage) => {
      clearTimeout(silent);
      if (over) return;
      let svids: DelegatedX509SVID[];
      try {
        svids = decodeSVIDs(msg);
      } catch (err) {
        call.cancel();
        end(new VerdictError('ERR_DELEGATED_IDENTITY_MALFORMED', (err as Error).message.slice(0, MAX_DETAIL_CHARS)));
        return;
      }
      handlers.update(svids);
    });
    call.on('error', (err: grpc.ServiceError) => end(streamError(err)));
    call.on('end', () => end(new VerdictError('ERR_DELEGATED_IDENTITY_STREAM', 'the agent ended the stream')));
    return {
      cancel: () => {
        clearTimeout(silent);
        over = true;
        call.cancel();
      },
    };
  }

  close(): void {
    this.client.close();
  }
}

function streamError(err: grpc.ServiceError): VerdictError {
  const status = grpcJs().status;
  const detail = `${status[err.code] ?? err.code}: ${(err.details ?? '').slice(0, MAX_DETAIL_CHARS)}`;
  return new VerdictError(
    err.code === status.PERMISSION_DENIED ? 'ERR_DELEGATED_IDENTITY_REFUSED' : 'ERR_DELEGATED_IDENTITY_STREAM',
    detail,
  );
}

function decodeSVIDs(msg: ResponseMessage): DelegatedX509SVID[] {
  return msg.x509_svids.map(({ x509_svid: svid }) => {
    if (!svid?.id) throw new Error('an X.509-SVID without an ID');
    const expiresAtMs = Number(svid.expires_at) * 1000;
    if (!Number.isSafeInteger(expiresAtMs) || expiresAtMs <= 0) throw new Error(`an X.509-SVID with expiry ${svid.expires_at}`);
    // The ID as SPIRE's types carry it (trust domain, path), checked as any SPIFFE ID verdict accepts.
    return { spiffeId: parseSPIFFEID(`spiffe://${svid.id.trust_domain}${svid.id.path}`).id, expiresAtMs };
  });
}

export function loadDelegatedIdentityClientConstructor(): grpc.ServiceClientConstructor {
  // Only a configured delegated binding needs it.
  type Pkg = { spire: { api: { agent: { delegatedidentity: { v1: { DelegatedIdentity: grpc.ServiceClientConstructor } } } } } };
  return (loadPackagedProto('spire-delegated-identity.proto') as unknown as Pkg).spire.api.agent.delegatedidentity.v1.DelegatedIdentity;
}
