import http2 from 'node:http2';

/**
 * The floor for any gRPC server on node:http2: answers every stream with the same framed gRPC message and
 * grpc-status 0, decoding nothing. Run as its own process (`node dist/loadtest/lib/h2-echo.js`); prints
 * `{"port": N}` on stdout once listening.
 */
const ANSWER = Buffer.from([0, 0, 0, 0, 4, 0x0a, 0x02, 0x08, 0x00]);
const HEADERS = { ':status': 200, 'content-type': 'application/grpc' };
const TRAILERS = { 'grpc-status': '0' };

const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
server.on('stream', (stream) => {
  stream.on('error', () => undefined);
  stream.resume();
  stream.once('end', () => {
    stream.respond(HEADERS, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers(TRAILERS));
    stream.end(ANSWER);
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
