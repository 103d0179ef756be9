import http2, { type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrpcCall, frame, type GrpcCallOptions } from '../../../src/server/grpc-call';

// A full GC on demand, so that what is still reachable is a fact, not a guess.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/**
 * node:http2 keeps every stream's JS object alive through young-generation GCs until a full GC (its native
 * handle is a root for scavenges), so whatever a finished stream still references is promoted to the old
 * generation. A call, with its request and decision, must not be among it once it is over.
 */
describe('GrpcCall: a finished call is not kept by its stream', () => {
  let server: http2.Http2Server;
  let url: string;
  const streams: ServerHttp2Stream[] = [];
  const calls: WeakRef<GrpcCall>[] = [];
  const options: GrpcCallOptions = {
    maxBytes: 1024,
    hardMaxBytes: 4096,
    budget: { reserve: () => true, release: () => undefined },
    onRefused: () => undefined,
  };

  beforeAll(async () => {
    server = http2.createServer();
    server.on('stream', (stream, headers) => {
      // The test keeps each stream, as node:http2's handle does during a scavenge.
      streams.push(stream);
      const timeout = headers['x-timeout-ms'] === undefined ? undefined : Number(headers['x-timeout-ms']);
      const call = new GrpcCall(
        stream,
        headers,
        options,
        'identity',
        timeout,
        (c, message) => {
          if (message.kind === 'message') c.sendUnary(message.bytes);
        },
        () => undefined,
      );
      calls.push(new WeakRef(call));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /** One unary call; resolves with the echoed message once the client has the whole answer and the trailers. */
  async function unary(body: Buffer, extra: Record<string, string> = {}): Promise<{ message: Buffer; status: string | undefined }> {
    const session = http2.connect(url);
    try {
      const req = session.request({ ':method': 'POST', ':path': '/t.S/M', 'content-type': 'application/grpc', ...extra });
      const chunks: Buffer[] = [];
      let status: string | undefined;
      req.on('trailers', (t) => (status = t['grpc-status'] as string | undefined));
      req.on('data', (c: Buffer) => chunks.push(c));
      req.end(frame(body));
      await new Promise<void>((resolve, reject) => req.on('close', resolve).on('error', reject));
      return { message: Buffer.concat(chunks).subarray(5), status };
    } finally {
      session.close();
    }
  }

  async function collectable(ref: WeakRef<GrpcCall>): Promise<boolean> {
    // A WeakRef's target stays alive until the turn that made or read it ends.
    await nextTurn();
    gc();
    return ref.deref() === undefined;
  }

  it('answered: the call is collectable while the stream is still referenced', async () => {
    const answer = await unary(Buffer.from('hello'));
    expect(answer).toEqual({ message: Buffer.from('hello'), status: '0' });
    const stream = streams.at(-1) as ServerHttp2Stream;
    expect(stream.closed).toBe(true);
    expect(await collectable(calls.at(-1) as WeakRef<GrpcCall>)).toBe(true);
    // The stream itself is still here (held by the test): only what it points to was let go.
    expect(streams.at(-1)).toBe(stream);
  });

  it('with a deadline: the answered call is collectable too (its timer is cleared)', async () => {
    const answer = await unary(Buffer.from('x'), { 'x-timeout-ms': '60000' });
    expect(answer.status).toBe('0');
    expect(await collectable(calls.at(-1) as WeakRef<GrpcCall>)).toBe(true);
  });

  it('a call that is still open stays reachable from its stream', async () => {
    const session = http2.connect(url);
    const req = session.request({ ':method': 'POST', ':path': '/t.S/M', 'content-type': 'application/grpc' });
    req.write(Buffer.from([0, 0, 0, 0, 9])); // the prefix of a 9-byte message, and no more yet
    await new Promise<void>((resolve) => server.once('stream', () => resolve()));
    const ref = calls.at(-1) as WeakRef<GrpcCall>;
    expect(await collectable(ref)).toBe(false);
    req.close();
    session.close();
    await new Promise<void>((resolve) => (streams.at(-1) as ServerHttp2Stream).once('close', resolve));
    expect(await collectable(ref)).toBe(true);
  });
});
