import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reflectionTransportSchema } from '../../src/config/sections/reflection-transport';
import { ReflectionServer } from '../../src/server/reflection-server';
import { startTestVerdict } from '../helpers/verdict-harness';

// The reflection listener binds with node:net (grpc-js serves the connections it accepts). Each bind failure
// is made for real here.
describe('reflection listener: an address it cannot bind', () => {
  const holder = createServer();
  let heldPort = 0;
  beforeAll(async () => {
    holder.listen(0, '127.0.0.1');
    await once(holder, 'listening');
    heldPort = (holder.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => holder.close(() => resolve())));

  it.each([
    {
      name: 'a port in use (EADDRINUSE)',
      host: '127.0.0.1',
      port: () => heldPort,
      says: /is already in use \(EADDRINUSE\); set server\.reflectionPort to another port$/,
    },
    // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never an address of this host.
    {
      name: 'an address not of this host (EADDRNOTAVAIL)',
      host: '192.0.2.1',
      port: () => 0,
      says: /is not an address of this host \(EADDRNOTAVAIL\); set server\.grpc\.host to an address of this host$/,
    },
    // .invalid never resolves (RFC 6761 §6.4).
    {
      name: 'a host that does not resolve',
      host: 'no.such.host.invalid',
      port: () => 0,
      says: /names a host that does not resolve \((ENOTFOUND|EAI_AGAIN)\); set server\.grpc\.host to an address of this host$/,
    },
  ])('$name: ERR_LISTEN naming the setting to change', async ({ host, port, says }) => {
    const server = new ReflectionServer(host, port(), reflectionTransportSchema.parse(undefined));
    const err: unknown = await server.start().then(
      () => null,
      (e: unknown) => e,
    );
    await server.stop();
    expect(err).toMatchObject({ code: 'ERR_LISTEN' });
    expect((err as Error).message).toMatch(says);
  });
});

describe('a start that fails at the reflection listener', () => {
  it('closes the gRPC listener it had already bound', async () => {
    const held = createServer().listen(0, '127.0.0.1');
    await once(held, 'listening');
    // A free port for the gRPC listener, known beforehand so that the test can bind it afterwards.
    const probe = createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const grpcPort = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    try {
      const err: unknown = await startTestVerdict([
        `server.grpc.port=${grpcPort}`,
        'server.reflection=true',
        `server.reflectionPort=${(held.address() as AddressInfo).port}`,
      ]).then(
        async (v) => {
          await v.stop();
          return null;
        },
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ code: 'ERR_LISTEN' });
      // The port is free again: binding it succeeds.
      const again = createServer().listen(grpcPort, '127.0.0.1');
      const [event] = await Promise.race([once(again, 'listening').then(() => ['listening']), once(again, 'error')]);
      again.close();
      expect(event).toBe('listening');
    } finally {
      held.close();
    }
  });
});
