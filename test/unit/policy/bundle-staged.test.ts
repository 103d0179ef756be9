import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StagedBundle, stagingFor } from '../../../src/policy/bundle-staged';
import { tempDir } from '../../helpers/verdict-harness';

const MiB = 2 ** 20;
const staging = stagingFor();

/**
 * External memory V8 accounts to this (the event loop's) isolate: what drives its collections. A worker's
 * buffers are its own; a transferred chunk leaves it (Node's `arrayBuffers` would still count a chunk the
 * event loop allocated, whichever thread holds it now, so it is not the figure here).
 */
const loopBuffers = (): number => process.memoryUsage().external;

describe('StagedBundle: the bundle file lives in a bundle worker', () => {
  const data = randomBytes(20 * MiB + 17);
  const sha256 = createHash('sha256').update(data).digest('hex');

  /** Stages `data`: size and sha256 known, the event loop's buffers barely grow, the bytes come back intact. */
  async function expectStagedOffLoop(stage: () => Promise<StagedBundle>): Promise<void> {
    const before = loopBuffers();
    const staged = await stage();
    try {
      expect({ size: staged.size, sha256: staged.sha256 }).toEqual({ size: data.length, sha256 });
      // Held on the event loop, the file alone would add 20 MiB here (twice, with a read's chunks).
      expect(loopBuffers() - before).toBeLessThan(4 * MiB);
      expect((await staged.bytes()).equals(data)).toBe(true);
    } finally {
      staged.close();
    }
  }

  it('reads a file in the worker: size and sha256 known, the bytes stay off the event loop until asked', async () => {
    const path = join(tempDir('verdict-staged-'), 'bundle.tar.gz');
    writeFileSync(path, data);
    await expectStagedOffLoop(() => StagedBundle.fromFile(path, 32 * MiB, 'bundle', staging));
  });

  describe('a URL the worker downloads itself (real HTTP server on loopback)', () => {
    let server: Server;
    let base: string;
    /** Chunks the /chunked route wrote before its client went away, and whether it wrote them all. */
    let chunked = { written: 0, finished: false };

    beforeAll(async () => {
      server = createServer((req, res) => {
        if (req.url === '/data') {
          if (req.headers['if-none-match'] === '"e1"') return res.writeHead(304).end();
          return res.writeHead(200, { 'content-length': data.length, etag: '"e1"' }).end(data);
        }
        if (req.url === '/chunked') {
          // No content-length: only the bound checked while streaming can stop it. Written with backpressure,
          // so a client that stops reading stops the writes.
          chunked = { written: 0, finished: false };
          res.writeHead(200);
          const next = (): void => {
            if (res.destroyed) return;
            if (chunked.written === 21) return void res.end(() => (chunked.finished = true));
            const c = data.subarray(chunked.written * MiB, ++chunked.written * MiB);
            if (res.write(c)) setImmediate(next);
            else res.once('drain', next);
          };
          return next();
        }
        if (req.url === '/broken') {
          res.writeHead(200, { 'content-length': 2 * MiB });
          return res.write(data.subarray(0, MiB), () => res.destroy());
        }
        res.writeHead(404).end();
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    const get = (path: string, headers: Record<string, string> = {}, maxBytes = 32 * MiB) =>
      StagedBundle.fromURL({ url: `${base}${path}`, headers, redirect: 'error', timeoutMs: 10_000, what: path }, maxBytes, staging);

    it('downloads a body in the worker: status, ETag, size and sha256 known, the bytes stay off the event loop until asked', async () => {
      let etag: string | null = null;
      await expectStagedOffLoop(async () => {
        const got = await get('/data');
        etag = got.etag;
        if (got.staged === null) throw new Error(`expected a staged body, got HTTP ${got.status}`);
        return got.staged;
      });
      expect(etag).toBe('"e1"');
    });

    it('gives the status and no staged body for anything but 200 (a 304 for If-None-Match, a 404)', async () => {
      expect(await get('/data', { 'if-none-match': '"e1"' })).toMatchObject({ status: 304, staged: null });
      expect(await get('/missing')).toMatchObject({ status: 404, staged: null });
    });

    it('refuses a body over the bound while it streams (ERR_BUNDLE_TOO_LARGE) and stops reading it', async () => {
      await expect(get('/chunked', {}, 4 * MiB)).rejects.toMatchObject({ code: 'ERR_BUNDLE_TOO_LARGE' });
      await new Promise<void>((resolve) => setImmediate(resolve));
      expect(chunked.finished).toBe(false);
      expect(chunked.written).toBeLessThan(21);
    });

    it('refuses a declared length over the bound (ERR_BUNDLE_TOO_LARGE), a body that breaks off and an unreachable URL (ERR_BUNDLE_SOURCE)', async () => {
      await expect(get('/data', {}, MiB)).rejects.toMatchObject({ code: 'ERR_BUNDLE_TOO_LARGE' });
      await expect(get('/broken')).rejects.toMatchObject({ code: 'ERR_BUNDLE_SOURCE' });
      const closed = createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const port = (closed.address() as AddressInfo).port;
      await new Promise<void>((resolve) => closed.close(() => resolve()));
      const unreachable = StagedBundle.fromURL(
        { url: `http://127.0.0.1:${port}/`, headers: {}, redirect: 'error', timeoutMs: 5000, what: 'x' },
        MiB,
        staging,
      );
      await expect(unreachable).rejects.toMatchObject({ code: 'ERR_BUNDLE_SOURCE' });
    });
  });

  it.each([
    { name: 'a file over maxBytes', make: (p: string) => writeFileSync(p, data), code: 'ERR_BUNDLE_TOO_LARGE' },
    { name: 'a FIFO', make: (p: string) => execFileSync('mkfifo', [p]), code: 'ERR_BUNDLE_FILE_TYPE' },
    { name: 'a directory', make: (p: string) => execFileSync('mkdir', [p]), code: 'ERR_BUNDLE_FILE_TYPE' },
    { name: 'a missing file', make: () => undefined, code: 'ERR_BUNDLE_SOURCE' },
  ])('refuses $name in the worker with $code', async ({ make, code }) => {
    const path = join(tempDir('verdict-staged-'), 'bundle.tar.gz');
    make(path);
    await expect(StagedBundle.fromFile(path, MiB, 'bundle', staging)).rejects.toMatchObject({ code });
  });
});
