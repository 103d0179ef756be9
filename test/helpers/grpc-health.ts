import * as grpc from '@grpc/grpc-js';

/** grpc.health.v1.Health/Check against a loopback port; resolves the ServingStatus name. */
export function healthCheck(port: number, service: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    // grpc.health.v1.HealthCheckRequest { string service = 1 }; response { ServingStatus status = 1 }
    const req = Buffer.concat([Buffer.from([0x0a, service.length]), Buffer.from(service)]);
    client.makeUnaryRequest(
      '/grpc.health.v1.Health/Check',
      (b: Buffer) => b,
      (b: Buffer) => b,
      req,
      (err, res) => {
        client.close();
        if (err) return reject(err);
        const code = res && res.length >= 2 ? res[1] : 0;
        resolve(['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'][code ?? 0] ?? 'UNKNOWN');
      },
    );
  });
}
