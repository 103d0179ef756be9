import type * as grpc from '@grpc/grpc-js';
import { grpcJs } from '../telemetry/grpc-log';
import { loadAuthorizationProtos } from './envoy-protos';
import { listenError } from './listen-error';

/**
 * gRPC server reflection stays on grpc-js, on a listener of its own (server.reflectionPort, plaintext): it is a
 * debugging aid, not on the Check path, and @grpc/reflection needs grpc-js and the full descriptors. The
 * reflection package, grpc-js and the descriptors are loaded only when reflection is enabled.
 */
export class ReflectionServer {
  private server: grpc.Server | null = null;

  constructor(
    private readonly host: string,
    private readonly port: number,
  ) {}

  async start(): Promise<number> {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on demand; see the class comment
    const { ReflectionService } = require('@grpc/reflection') as typeof import('@grpc/reflection');
    const grpc = grpcJs();
    const server = new grpc.Server();
    new ReflectionService(loadAuthorizationProtos()).addToServer(server);
    this.server = server;
    const address = `${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}`;
    return new Promise((resolve, reject) => {
      server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) => {
        if (!err) return resolve(port);
        this.server = null;
        server.forceShutdown();
        reject(listenError(err, address, { host: 'server.grpc.host', port: 'server.reflectionPort' }));
      });
    });
  }

  stop(): Promise<void> {
    const server = this.server;
    if (!server) return Promise.resolve();
    return new Promise((resolve) => server.tryShutdown(() => resolve()));
  }
}
