import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HTTPBundleSource } from '../../../src/policy/bundle-source-http';
import { OCIBundleSource } from '../../../src/policy/bundle-source-oci';

// What a bundle service or registry may send that a real one would not: the server's answer is set per
// test, and every request it saw is kept, so a test can check what verdict asked for as well as what it did.

type Answer = (req: IncomingMessage, res: ServerResponse) => void;

describe('bundle sources against a hostile server', () => {
  let server: Server;
  let base: string;
  let answer: Answer = (_req, res) => res.writeHead(500).end();
  const seen: IncomingMessage[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push(req);
      answer(req, res);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });

  const polling = { authorization: null, minDelayMs: 10, maxDelayMs: 20, timeoutMs: 2000, maxBytes: 1024 * 1024 };
  const http = (): HTTPBundleSource => new HTTPBundleSource({ url: `${base}/bundle.tar.gz`, signatureUrl: null, ...polling });
  const oci = (timeoutMs = polling.timeoutMs): OCIBundleSource =>
    new OCIBundleSource({ registry: base, repository: 'p/a', reference: 'latest', digest: null, ...polling, timeoutMs });

  it('HTTP source: a 304 to its first request (no If-None-Match) is a source error, not "unchanged"', async () => {
    answer = (_req, res) => res.writeHead(304).end();
    seen.length = 0;
    await expect(http().fetch()).rejects.toMatchObject({ code: 'ERR_BUNDLE_SOURCE', message: expect.stringContaining('HTTP 304') });
    expect(seen[0]?.headers['if-none-match']).toBeUndefined();
  });

  it('HTTP source: asks for the bytes as stored and refuses a body that came gzip-encoded anyway', async () => {
    answer = (_req, res) => res.writeHead(200, { 'content-encoding': 'gzip' }).end(gzipSync(Buffer.alloc(64)));
    seen.length = 0;
    await expect(http().fetch()).rejects.toMatchObject({
      code: 'ERR_BUNDLE_SOURCE',
      message: expect.stringContaining('Content-Encoding gzip'),
    });
    expect(seen[0]?.headers['accept-encoding']).toBe('identity');
  });

  it("HTTP source: a redirect is refused with fetch's reason, not just the error's class", async () => {
    answer = (req, res) => res.writeHead(302, { location: `${req.url}x` }).end();
    await expect(http().fetch()).rejects.toMatchObject({
      code: 'ERR_BUNDLE_SOURCE',
      message: expect.stringContaining('unreachable (unexpected redirect)'),
    });
  });

  it('OCI source: a redirect loop is refused as one, and the requests asked for identity encoding', async () => {
    answer = (req, res) => res.writeHead(307, { location: `${req.url}x` }).end();
    seen.length = 0;
    await expect(oci().fetch()).rejects.toMatchObject({
      code: 'ERR_BUNDLE_SOURCE',
      message: expect.stringContaining('redirect count exceeded'),
    });
    expect(seen.length).toBeGreaterThan(1);
    expect(seen.every((r) => r.headers['accept-encoding'] === 'identity')).toBe(true);
  });

  it('OCI source: a manifest that came gzip-encoded is refused before it is parsed or hashed', async () => {
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, layers: [] }));
    answer = (req, res) =>
      req.method === 'HEAD' ? res.writeHead(200).end() : res.writeHead(200, { 'content-encoding': 'gzip' }).end(gzipSync(manifest));
    await expect(oci().fetch()).rejects.toMatchObject({
      code: 'ERR_BUNDLE_SOURCE',
      message: expect.stringContaining('OCI manifest came with Content-Encoding gzip'),
    });
  });

  it('OCI source: a manifest body that stalls after its headers is a source error that says it broke off', async () => {
    answer = (req, res) => {
      if (req.method === 'HEAD') res.writeHead(200).end();
      else res.writeHead(200, { 'content-length': '1000' }).write('{');
    };
    await expect(oci(300).fetch()).rejects.toMatchObject({
      code: 'ERR_BUNDLE_SOURCE',
      message: 'OCI manifest broke off: timed out',
    });
  });
});
