import { describe, expect, it } from 'vitest';
import { VerdictError } from '../../../src/errors';
import { listenError } from '../../../src/server/listen-error';

// The errors node:net and getaddrinfo give a listener (their code and message as Node sets them), and the
// one coded error verdict makes of each: the address, what is wrong, and the key to change.
const GRPC = { host: 'server.grpc.host', port: 'server.grpc.port' };

function errnoError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

describe('listenError', () => {
  it.each([
    {
      name: 'a host that does not resolve (ENOTFOUND)',
      err: errnoError('ENOTFOUND', 'getaddrinfo ENOTFOUND no.such.host.invalid'),
      message: 'no.such.host.invalid:9191 names a host that does not resolve (ENOTFOUND); set server.grpc.host to an address of this host',
    },
    {
      name: 'a resolver that cannot answer now (EAI_AGAIN)',
      err: errnoError('EAI_AGAIN', 'getaddrinfo EAI_AGAIN no.such.host.invalid'),
      message:
        'no.such.host.invalid:9191 names a host that could not be resolved now (EAI_AGAIN); set server.grpc.host to an address of this host',
    },
    {
      name: 'an address the OS will not bind (EINVAL)',
      err: errnoError('EINVAL', 'listen EINVAL: invalid argument'),
      message: 'no.such.host.invalid:9191 is not an address a listener can bind (EINVAL); set server.grpc.host to an address of this host',
    },
    {
      name: 'a port in use (EADDRINUSE)',
      err: errnoError('EADDRINUSE', 'listen EADDRINUSE: address already in use'),
      message: 'no.such.host.invalid:9191 is already in use (EADDRINUSE); set server.grpc.port to another port',
    },
  ])('gives ERR_LISTEN naming the key to change for $name', ({ err, message }) => {
    const coded = listenError(err, 'no.such.host.invalid:9191', GRPC);
    expect(coded).toBeInstanceOf(VerdictError);
    expect(coded).toMatchObject({ code: 'ERR_LISTEN', message });
  });

  it('names the socket path key for a Unix socket', () => {
    const coded = listenError(errnoError('EADDRINUSE', 'listen EADDRINUSE'), '/run/verdict.sock', { path: 'server.grpc.unixSocket' });
    expect(coded).toMatchObject({
      code: 'ERR_LISTEN',
      message: '/run/verdict.sock is already in use (EADDRINUSE); set server.grpc.unixSocket to another path',
    });
  });

  it('passes any other failure through unchanged', () => {
    const other = errnoError('EMFILE', 'too many open files');
    expect(listenError(other, '127.0.0.1:9191', GRPC)).toBe(other);
  });
});
