import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VerdictError } from '../../src/errors';
import type { RunningVerdict } from '../../src/main';
import type { BundleLoader } from '../../src/policy/bundle-loader';
import { opaBuild, revisionPolicy } from '../helpers/bundle-fixtures';
import { nextActivation } from '../helpers/bundle-publish';
import { checkClient, headerValue, httpCheckRequest, startTestVerdict } from '../helpers/verdict-harness';

/**
 * A real HTTP bundle service on loopback, speaking OPA's bundle protocol: GET with ETag / If-None-Match,
 * 304 when unchanged. It can be switched to answer 503 (an outage) and checks the Authorization header.
 */
class BundleService {
  readonly server: Server;
  bundle: Buffer = Buffer.alloc(0);
  down = false;
  readonly log: { status: number; ifNoneMatch: string | undefined }[] = [];

  constructor(private readonly token: string) {
    this.server = createServer((req, res) => {
      const status = this.answer(req.headers.authorization, req.headers['if-none-match']);
      this.log.push({ status, ifNoneMatch: req.headers['if-none-match'] });
      if (status !== 200) {
        res.writeHead(status).end();
        return;
      }
      res.writeHead(200, { etag: this.etag(), 'content-type': 'application/gzip' }).end(this.bundle);
    });
  }

  async listen(): Promise<string> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/bundles/authz.tar.gz`;
  }

  private answer(authorization: string | undefined, ifNoneMatch: string | undefined): number {
    if (authorization !== `Bearer ${this.token}`) return 401;
    if (this.down) return 503;
    return ifNoneMatch === this.etag() ? 304 : 200;
  }

  private etag(): string {
    return `"${createHash('sha256').update(this.bundle).digest('hex').slice(0, 16)}"`;
  }
}

async function servingRevision(verdict: RunningVerdict): Promise<string | undefined> {
  const client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
  try {
    return headerValue((await client.check(httpCheckRequest({}))).okResponse?.headers, 'x-bundle-rev');
  } finally {
    client.close();
  }
}

/** Waits until the service has logged a request matching `pred` (polled on each request, with a deadline). */
async function waitForRequest(service: BundleService, pred: (e: BundleService['log'][number]) => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!service.log.some(pred)) {
    if (Date.now() > deadline) throw new Error('bundle service never saw the expected request');
    await once(service.server, 'request');
  }
}

describe('HTTP bundle service source', () => {
  const service = new BundleService('s3cret');
  let verdict: RunningVerdict;
  let a: Buffer;
  let b: Buffer;
  let c: Buffer;
  let url: string;

  beforeAll(async () => {
    const paths = await Promise.all(['A', 'B', 'C'].map((r) => opaBuild({ files: revisionPolicy(r), revision: r })));
    [a, b, c] = paths.map((p) => readFileSync(p)) as [Buffer, Buffer, Buffer];
    service.bundle = a;
    url = await service.listen();
    verdict = await startTestVerdict([
      'bundles.source.type=http',
      `bundles.source.url=${url}`,
      'bundles.source.authorization=Bearer s3cret',
      'bundles.source.minDelayMs=10',
      'bundles.source.maxDelayMs=30',
    ]);
  });

  const loader = (): BundleLoader => {
    if (verdict.bundles === null) throw new Error('an http source must start a bundle loader');
    return verdict.bundles;
  };

  afterAll(async () => {
    await verdict?.stop();
    service.server.close();
  });

  it('serves the first bundle, then polls with If-None-Match and gets 304 while unchanged', async () => {
    expect(await servingRevision(verdict)).toBe('A');
    await waitForRequest(service, (e) => e.status === 304 && e.ifNoneMatch !== undefined);
    expect(service.log.filter((e) => e.status === 200)).toHaveLength(1);
  });

  it('activates a new bundle when the ETag changes', async () => {
    const activated = nextActivation(loader());
    service.bundle = b;
    expect((await activated).bundle.revision).toBe('B');
    expect(await servingRevision(verdict)).toBe('B');
  });

  it('keeps serving through an outage, reports it, and recovers', async () => {
    const [sourceError] = (await (async () => {
      const failed = once(loader(), 'source-error');
      service.down = true;
      return failed;
    })()) as [VerdictError];
    expect(sourceError.code).toBe('ERR_BUNDLE_SOURCE');
    expect(sourceError.message).not.toContain('s3cret');
    expect(await servingRevision(verdict)).toBe('B');

    const activated = nextActivation(loader());
    service.bundle = c;
    service.down = false;
    expect((await activated).bundle.revision).toBe('C');
    expect(await servingRevision(verdict)).toBe('C');
    const metrics = await verdict.metrics.registry.getSingleMetricAsString('verdict_bundle_loads_total');
    expect(metrics).toMatch(/outcome="source-error",reason="ERR_BUNDLE_SOURCE"} [1-9]/);
  });

  it('starts NOT_SERVING when the service rejects the credentials (no bundle to serve), reporting the source error', async () => {
    const v = await startTestVerdict([
      'bundles.source.type=http',
      `bundles.source.url=${url}`,
      'bundles.source.authorization=Bearer wrong',
    ]);
    try {
      expect(v.policy.current).toBeNull();
      const metrics = await v.metrics.registry.getSingleMetricAsString('verdict_bundle_loads_total');
      expect(metrics).toContain('outcome="source-error",reason="ERR_BUNDLE_SOURCE"}');
    } finally {
      await v.stop();
    }
  });
});
