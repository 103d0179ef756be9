import * as grpc from '@grpc/grpc-js';
import { connect, type ClientHttp2Session } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningVerdict } from '../../src/main';
import { lpm } from '../helpers/grpc-raw-client';
import { authorizationClientClass, headerValue, httpCheckRequest, startTestVerdict, type CheckResponse } from '../helpers/verdict-harness';

/**
 * Hostile CheckRequests over raw HTTP/2 (node:http2 client, no gRPC library on the client side), against
 * the real server and the embedded default policy: each is refused with a code, and the very next good
 * request on the same connection is answered correctly. The hostile bytes are generated here.
 */
const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';
const method = (authorizationClientClass().service as grpc.ServiceDefinition).Check as grpc.MethodDefinition<unknown, CheckResponse>;

interface RawReply {
  grpcStatus: number;
  response: CheckResponse | null;
}

function post(session: ClientHttp2Session, body: Buffer): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': CHECK_PATH, 'content-type': 'application/grpc', te: 'trailers' });
    const chunks: Buffer[] = [];
    let status: number | undefined;
    stream.on('response', (headers) => {
      if (headers['grpc-status'] !== undefined) status = Number(headers['grpc-status']); // trailers-only reply
    });
    stream.on('trailers', (trailers) => {
      status = Number(trailers['grpc-status']);
    });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', reject);
    stream.on('end', () => {
      const data = Buffer.concat(chunks);
      const response = data.length >= 5 ? method.responseDeserialize(data.subarray(5, 5 + data.readUInt32BE(1))) : null;
      resolve({ grpcStatus: status ?? -1, response });
    });
    stream.end(body);
  });
}

/** Seeded, so a failing input can be reproduced. */
function randomBytes(n: number, seed = n): Buffer {
  let x = seed * 2654435761 + 1;
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    out[i] = x >> 16;
  }
  return out;
}

const good = (): Buffer => lpm(method.requestSerialize(httpCheckRequest({ method: 'GET', path: '/healthz' })));

describe('malformed CheckRequests over raw HTTP/2', () => {
  let verdict: RunningVerdict;
  let session: ClientHttp2Session;

  beforeAll(async () => {
    verdict = await startTestVerdict();
    session = connect(`http://127.0.0.1:${verdict.grpcPort}`);
  });
  afterAll(async () => {
    session.close();
    await verdict.stop();
  });

  const expectGoodAnswered = async (): Promise<void> => {
    const reply = await post(session, good());
    expect(reply.grpcStatus).toBe(0);
    expect(reply.response?.status?.code ?? 0).toBe(0);
    expect(headerValue(reply.response?.okResponse?.headers, 'x-verdict-rule')).toBe('health-probes');
  };

  const denied: { name: string; body: () => Buffer; code: string }[] = [
    {
      name: 'random bytes in a well-formed frame',
      body: () => lpm(Buffer.concat([Buffer.from([0x0f]), randomBytes(200)])),
      code: 'ERR_REQUEST_MALFORMED',
    },
    { name: 'a truncated varint', body: () => lpm(Buffer.from([0x0a, 0xff, 0xff])), code: 'ERR_REQUEST_MALFORMED' },
    { name: 'a length prefix past the message', body: () => lpm(Buffer.from([0x0a, 0x7f, 0x00])), code: 'ERR_REQUEST_MALFORMED' },
    {
      name: 'a JSON body nested 20,000 deep',
      body: () =>
        lpm(
          method.requestSerialize(
            httpCheckRequest({
              method: 'POST',
              path: '/api',
              headers: { 'content-type': 'application/json' },
              body: '['.repeat(20_000) + ']'.repeat(20_000),
            }),
          ),
        ),
      code: 'ERR_REQUEST_TOO_DEEP',
    },
    {
      name: '100,000 query parameters',
      body: () => lpm(method.requestSerialize(httpCheckRequest({ method: 'GET', path: `/api?${'p=1&'.repeat(100_000)}` }))),
      code: 'ERR_REQUEST_TOO_MANY_PARAMS',
    },
  ];
  for (const c of denied) {
    it(`${c.name}: denied with ${c.code}, then the next request is answered`, async () => {
      const reply = await post(session, c.body());
      expect(reply.grpcStatus).toBe(0);
      expect(reply.response?.status?.code).toBe(7);
      expect(headerValue(reply.response?.deniedResponse?.headers, 'x-verdict-reason')).toBe(c.code);
      await expectGoodAnswered();
    });
  }

  it('random bytes of many lengths: always a CheckResponse (a coded deny unless they happen to decode)', async () => {
    for (let i = 0; i < 40; i++) {
      const reply = await post(session, lpm(randomBytes(1 + i * 7)));
      expect(reply.grpcStatus).toBe(0);
      expect(reply.response?.status?.code).toBe(7);
      const reason = headerValue(reply.response?.deniedResponse?.headers, 'x-verdict-reason');
      expect(reason === 'DENIED_BY_POLICY' || reason?.startsWith('ERR_REQUEST_')).toBe(true);
    }
    await expectGoodAnswered();
  });

  // grpc-js refuses these before the deserializer: a gRPC error status, no CheckResponse.
  const transportErrors: { name: string; body: () => Buffer }[] = [
    { name: 'a frame cut short (declares 100 bytes, sends 10)', body: () => lpm(randomBytes(10), 0, 100) },
    { name: 'a frame header cut short', body: () => Buffer.from([0, 0, 0]) },
  ];
  for (const c of transportErrors) {
    it(`${c.name}: a gRPC error, then the next request is answered`, async () => {
      const reply = await post(session, c.body());
      expect(reply.grpcStatus).not.toBe(0);
      expect(reply.grpcStatus).not.toBe(-1);
      expect(reply.response).toBeNull();
      await expectGoodAnswered();
    });
  }
});
