import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeCheckRequest } from '../../src/request/check-request-decoder';
import { ExactNumber } from '../../src/request/exact-number';
import { buildInputDocument } from '../../src/request/input-document';
import { inputToJSON } from '../../src/request/input-json';
import { expectedByPeerRules, loadCheckRequestType } from '../helpers/envoy-proto-reference';
import { send } from '../helpers/envoy-client';
import type { RunningEnvoy } from '../helpers/envoy-process';
import { printEnvoyLogsOnFailure, startEnvoyFor } from '../helpers/envoy-stack';
import { startEchoUpstream, type EchoUpstream } from '../helpers/upstream-echo';
import { authorizationClientClass } from '../helpers/verdict-harness';

/**
 * CheckRequests captured from the pinned, real Envoy (envoy/sidecar-grpc.yaml: string bodies, 8 KiB
 * max_request_bytes with allow_partial_message) by a capture server whose deserializer keeps the raw
 * bytes, then replayed into verdict's decoder: the result must equal protobufjs's decoding of the same
 * bytes converted by the peer's protomap rules (test/helpers/envoy-proto-reference.ts), field by field.
 */
const LIMITS = {
  maxRequestBytes: 1 << 20,
  maxHeaders: 200,
  maxInputDepth: 64,
  maxRequestFields: 50_000,
  maxParsedBodyBytes: 65_536,
  maxQueryParams: 1000,
};

describe('CheckRequests captured from a real Envoy, replayed into the decoder', () => {
  const captured: Buffer[] = [];
  let server: grpc.Server;
  let upstream: EchoUpstream;
  let envoy: RunningEnvoy;
  let port: number;
  const type = loadCheckRequestType();
  printEnvoyLogsOnFailure(() => [envoy]);

  beforeAll(async () => {
    const check = (authorizationClientClass().service as grpc.ServiceDefinition).Check as grpc.MethodDefinition<Buffer, unknown>;
    server = new grpc.Server();
    server.addService(
      { Check: { ...check, requestDeserialize: (b: Buffer) => Buffer.from(b) } },
      {
        check: (call: grpc.ServerUnaryCall<Buffer, unknown>, cb: grpc.sendUnaryData<unknown>) => {
          captured.push(call.request);
          cb(null, { status: { code: 0 }, okResponse: {} });
        },
      },
    );
    const capturePort = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    upstream = await startEchoUpstream();
    envoy = await startEnvoyFor('sidecar-grpc.yaml', {
      LISTENER_PORT: 0,
      VERDICT_PORT: capturePort,
      APP_PORT: upstream.port,
      AUTHZ_TIMEOUT: '2s',
    });
    port = envoy.listenerPort('ingress_http');
  });
  afterAll(async () => {
    await envoy?.stop();
    await upstream?.stop();
    server?.forceShutdown();
  });

  const replay = async (opts: Parameters<typeof send>[1]): Promise<Buffer> => {
    const before = captured.length;
    const res = await send(port, opts);
    expect(res.status).toBe(200);
    expect(captured.length).toBe(before + 1);
    return captured[before] as Buffer;
  };

  const expectPeerShape = (bytes: Buffer): Record<string, unknown> => {
    const decoded = decodeCheckRequest(bytes, LIMITS);
    expect(decoded.refusal).toBeUndefined();
    const reference = expectedByPeerRules(
      type,
      type.toObject(type.decode(bytes), { longs: String, enums: Number }) as Record<string, unknown>,
    );
    expect(decoded.message).toEqual(reference);
    return decoded.message as Record<string, unknown>;
  };

  it('a GET with a query and headers', async () => {
    const msg = expectPeerShape(await replay({ path: '/a/b?x=1&y=two', headers: { 'x-custom': 'v' } }));
    const attrs = msg.attributes as { request: { time: { seconds: unknown }; http: { headers: Record<string, string>; size?: unknown } } };
    expect(typeof attrs.request.time.seconds).toBe('number');
    expect(attrs.request.http.headers['x-custom']).toBe('v');
  });

  it('a POST with a JSON body: size is a number and body numbers reach the input exactly', async () => {
    const body = '{"n":12345678901234567890,"f":1.0}';
    const bytes = await replay({ method: 'POST', path: '/orders', headers: { 'content-type': 'application/json' }, body });
    const msg = expectPeerShape(bytes);
    const http = (msg.attributes as { request: { http: { size: unknown; body: string } } }).request.http;
    expect(http.size).toBe(body.length);
    expect(http.body).toBe(body);
    const input = await buildInputDocument(msg, LIMITS, false);
    expect((input.parsed_body as Record<string, unknown>).n).toEqual(new ExactNumber('12345678901234567890'));
    expect(inputToJSON(input)).toContain('"parsed_body":{"n":12345678901234567890,"f":1.0}');
  });

  it('a body past max_request_bytes arrives cut, with x-envoy-auth-partial-body: true', async () => {
    const body = JSON.stringify({ pad: 'x'.repeat(10_000) });
    const msg = expectPeerShape(await replay({ method: 'POST', path: '/big', headers: { 'content-type': 'application/json' }, body }));
    const input = await buildInputDocument(msg, LIMITS, false);
    expect(input.truncated_body).toBe(true);
    expect(input.parsed_body).toBeNull();
  });
});
