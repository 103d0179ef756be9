import * as grpc from '@grpc/grpc-js';
import type { PackageDefinition } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import type { Config } from '../config/schema';
import type { DecisionPipeline } from '../decision/decision-pipeline';
import type { ReceivedCheckRequest } from '../request/check-request';
import { decodeCheckRequest } from '../request/check-request-decoder';
import type { Logger } from '../telemetry/logger';
import type { Metrics } from '../telemetry/metrics';
import { decisionToCheckResponse } from './check-response';
import { AUTHORIZATION_SERVICE, loadAuthorizationProtos } from './envoy-protos';
import { listenError } from './listen-error';

export interface GrpcServerDeps {
  config: Config;
  pipeline: DecisionPipeline;
  metrics: Metrics;
  logger: Logger;
  /** Server credentials (mTLS with verdict's SVID when configured); insecure otherwise. */
  credentials?: grpc.ServerCredentials;
}

export interface BoundAddresses {
  /** TCP port actually bound (the config may say 0). */
  port: number;
  unixSocket: string | null;
}

/**
 * envoy.service.auth.v3.Authorization/Check, grpc.health.v1.Health and (optionally) reflection.
 * The request deserializer is verdict's own decoder (request/check-request-decoder.ts): it refuses oversize
 * messages before decoding, and undecodable or over-bound ones with a code, so memory stays bounded and a
 * bad message is never evaluated.
 */
export class GrpcServer {
  private readonly server: grpc.Server;
  private readonly health = new HealthImplementation({ '': 'NOT_SERVING', [AUTHORIZATION_SERVICE]: 'NOT_SERVING' });
  private readonly maxBytes: number;

  constructor(private readonly deps: GrpcServerDeps) {
    this.maxBytes = deps.config.limits.maxRequestBytes;
    this.server = new grpc.Server({
      // Messages up to 4× the limit are received so they can be denied with a coded reason; beyond
      // that grpc-js refuses them itself (RESOURCE_EXHAUSTED; Envoy then fails closed).
      'grpc.max_receive_message_length': Math.max(this.maxBytes * 4, 4 * 1024 * 1024),
      'grpc.max_concurrent_streams': 1000,
      // channelz keeps per-call statistics nobody reads here; off saves CPU on every call (measured).
      'grpc.enable_channelz': 0,
    });
    const defs = loadAuthorizationProtos();
    this.server.addService(this.authorizationService(defs), { check: this.check });
    this.health.addToServer(this.server);
    if (deps.config.server.reflection) new ReflectionService(defs).addToServer(this.server);
  }

  setServing(serving: boolean): void {
    const status = serving ? 'SERVING' : 'NOT_SERVING';
    this.health.setStatus('', status);
    this.health.setStatus(AUTHORIZATION_SERVICE, status);
  }

  async start(): Promise<BoundAddresses> {
    const { grpc: listen } = this.deps.config.server;
    const creds = this.deps.credentials ?? grpc.ServerCredentials.createInsecure();
    const address = `${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${listen.port}`;
    const port = await this.bind(address, creds).catch((err: unknown) => Promise.reject(listenError(err, address, 'server.grpc.port')));
    if (listen.unixSocket) {
      const socket = `unix:${listen.unixSocket}`;
      await this.bind(socket, creds).catch((err: unknown) => Promise.reject(listenError(err, socket, 'server.grpc.unixSocket')));
    }
    return { port, unixSocket: listen.unixSocket };
  }

  /** Stop accepting; let in-flight calls finish within graceMs; then force-close. */
  stop(graceMs: number): Promise<void> {
    this.setServing(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.deps.logger.warn({ graceMs }, 'grace period over, closing remaining calls');
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      timer.unref();
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private bind(address: string, creds: grpc.ServerCredentials): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, creds, (err, port) => (err ? reject(err) : resolve(port)));
    });
  }

  private authorizationService(defs: PackageDefinition): grpc.ServiceDefinition {
    const service = defs[AUTHORIZATION_SERVICE] as grpc.ServiceDefinition;
    const check = service.Check as grpc.MethodDefinition<unknown, unknown>;
    const limits = this.deps.config.limits;
    const responseSerialize = this.boundedSerialize(check.responseSerialize);
    const requestDeserialize = (buf: Buffer): ReceivedCheckRequest => decodeCheckRequest(buf, limits);
    return { Check: { ...check, requestDeserialize, responseSerialize } };
  }

  /**
   * server.grpc.maxSendMessageBytes: a response over the bound is replaced by a small coded deny, so the
   * answer is still a deny Envoy understands (grpc-js would fail the call, and Envoy could fail open).
   */
  private boundedSerialize(serialize: (v: unknown) => Buffer): (v: unknown) => Buffer {
    const maxSend = this.deps.config.server.grpc.maxSendMessageBytes;
    const { reasonHeader, exposeReason, errorStatus } = this.deps.config.decision;
    const reason = 'ERR_RESPONSE_TOO_LARGE';
    const fallback = serialize({
      status: exposeReason ? { code: grpc.status.PERMISSION_DENIED, message: reason } : { code: grpc.status.PERMISSION_DENIED },
      deniedResponse: {
        status: { code: errorStatus },
        headers: exposeReason && reasonHeader !== '' ? [{ header: { key: reasonHeader, value: reason } }] : [],
      },
    });
    return (value: unknown): Buffer => {
      const buf = serialize(value);
      if (buf.length <= maxSend) return buf;
      this.deps.metrics.decisions.inc({ result: 'deny', engine: 'none', reason });
      this.deps.logger.warn({ code: reason, bytes: buf.length, maxSend }, 'CheckResponse too large: sent a deny instead');
      return fallback;
    };
  }

  private readonly check = (call: grpc.ServerUnaryCall<ReceivedCheckRequest, unknown>, callback: grpc.sendUnaryData<unknown>): void => {
    const timer = this.deps.metrics.checkDuration.startTimer({ protocol: 'grpc' });
    this.deps.pipeline.check(call.request, 'grpc').then(
      (decision) => {
        const { reasonHeader, exposeReason } = this.deps.config.decision;
        callback(null, decisionToCheckResponse(decision, { reasonHeader, exposeReason }));
        timer();
      },
      (err: unknown) => {
        // The pipeline turns every failure into a deny; reaching here is a bug. Still fail closed.
        this.deps.logger.error({ err }, 'decision pipeline threw');
        callback({ code: grpc.status.INTERNAL, details: 'ERR_INTERNAL' });
        timer();
      },
    );
  };
}
