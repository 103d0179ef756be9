import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTLSServer, Server as TLSServer } from 'node:https';
import { createServer as createTCPServer, type AddressInfo, type Socket } from 'node:net';
import { Readable, Writable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createGzip, gunzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load-config';
import type { DecisionLogPipeline, DecisionLogPipelineOptions } from '../../../src/decisionlog/decision-log-pipeline';
import { ConsoleSink } from '../../../src/decisionlog/sink-console';
import { HttpSink } from '../../../src/decisionlog/sink-http';
import { Metrics } from '../../../src/telemetry/metrics';
import { pipeline, recordWithSecrets, waitFor } from '../../helpers/decisionlog-fixtures';
import { mintTestPKI } from '../../helpers/envoy-certs';
import { verdictErrorOf } from '../../helpers/error-code';
import { recordingLogger, type RecordedLine } from '../../helpers/recording-logger';
import { count, spoolDir } from '../../helpers/spool-files';
import { tempDir } from '../../helpers/verdict-harness';

/*
 * The decision-log service is any HTTP server, so a real node:http(s) server is the component here; each test
 * makes it answer as a broken or hostile service would, which no healthy service does on demand.
 */

interface Seen {
  method: string;
  url: string;
  at: number;
  events: { decision_id: string; input?: { attributes?: { request?: { http?: { path?: string } } } } }[];
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

class HostileService {
  /** How the next request is answered; `ok` reads the batch and acknowledges it. */
  handler: Handler = (req, res) => this.ok(req, res);
  readonly seen: Seen[] = [];
  /** Decision ids the service acknowledged, in order. */
  readonly accepted: string[] = [];
  inFlight = 0;
  maxInFlight = 0;
  /** Response bytes the service managed to hand to the kernel (the body-pouring handlers count them). */
  poured = 0;
  private readonly sockets = new Set<Socket>();

  constructor(readonly server: Server = createServer()) {
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    server.on('secureConnection', (s: Socket) => this.sockets.add(s));
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      this.maxInFlight = Math.max(this.maxInFlight, ++this.inFlight);
      res.on('close', () => this.inFlight--);
      void Promise.resolve(this.handler(req, res)).catch(() => res.destroy());
    });
  }

  async start(path = '/logs'): Promise<string> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    const scheme = this.server instanceof TLSServer ? 'https' : 'http';
    return `${scheme}://127.0.0.1:${(this.server.address() as AddressInfo).port}${path}`;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.server.close();
  }

  /** Reads and records one request's batch. */
  async read(req: IncomingMessage): Promise<Seen> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const events = body.length > 0 ? (JSON.parse(gunzipSync(body).toString('utf8')) as Seen['events']) : [];
    const seen = { method: req.method ?? '', url: req.url ?? '', at: performance.now(), events };
    this.seen.push(seen);
    return seen;
  }

  /** Reads a batch and counts its events as acknowledged (the caller answers). */
  async take(req: IncomingMessage): Promise<Seen> {
    const seen = await this.read(req);
    this.accepted.push(...seen.events.map((e) => e.decision_id));
    return seen;
  }

  async ok(req: IncomingMessage, res: ServerResponse): Promise<void> {
    await this.take(req);
    res.writeHead(200).end();
  }

  /** Writes `chunk` until `limit` bytes or until the client goes away, honouring backpressure. */
  async pour(res: ServerResponse, chunk: Buffer, limit = Infinity): Promise<void> {
    while (this.poured < limit && !res.destroyed) {
      if (!res.write(chunk)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
      this.poured += chunk.length;
    }
    if (!res.destroyed) res.end();
  }
}

interface Run {
  log: DecisionLogPipeline;
  metrics: Metrics;
  logged: RecordedLine[];
  dir: string;
}

const services: HostileService[] = [];
const runs: Run[] = [];
afterEach(async () => {
  for (const r of runs.splice(0)) await r.log.close();
  for (const s of services.splice(0)) await s.stop();
});

async function service(server?: Server): Promise<{ svc: HostileService; url: string }> {
  const svc = new HostileService(server);
  services.push(svc);
  return { svc, url: await svc.start() };
}

const fastRetry = { batchBytes: 64 * 1024, batchDelayMs: 0, minRetryDelayMs: 5, maxRetryDelayMs: 50 };

async function start(
  url: string,
  sink: { timeoutMs?: number; headers?: Record<string, string> } = {},
  overrides: Partial<DecisionLogPipelineOptions> = {},
  dir = spoolDir(),
): Promise<Run> {
  const metrics = new Metrics({ defaultMetrics: false });
  const { logger, lines } = recordingLogger();
  const http = new HttpSink({ url, timeoutMs: sink.timeoutMs ?? 300, headers: sink.headers ?? {} });
  const log = pipeline([http], dir, { metrics, logger, shipper: fastRetry, drainOnCloseMs: 50, ...overrides });
  await log.start();
  const run = { log, metrics, logged: lines, dir };
  runs.push(run);
  return run;
}

/** Emits `n` decisions (sequence numbers from `from`) and returns their ids in order. */
function emit(run: Run, n: number, from = 0): string[] {
  const ids: string[] = [];
  for (let i = from; i < from + n; i++) {
    const { record, decision } = recordWithSecrets(i);
    run.log.emit(record, decision);
    ids.push(decision.id);
  }
  return ids;
}

const sinkErrors = (run: Run, why: string): Promise<number> => count(run.metrics.decisionLogSinkErrors, 'why', why);
const lost = (run: Run, why: string): Promise<number> => count(run.metrics.decisionLogLost, 'why', why);
const delivered = (run: Run): Promise<number> => count(run.metrics.decisionLogEvents, 'stage', 'delivered');

async function everyErrorCounted(run: Run, why: string, atLeast = 2): Promise<void> {
  await waitFor(async () => (await sinkErrors(run, why)) >= atLeast, `${atLeast} sink errors counted as ${why}`).catch(
    async (err: Error) => {
      throw new Error(
        `${err.message}; counted: ${JSON.stringify((await run.metrics.decisionLogSinkErrors.get()).values)} logged: ${JSON.stringify(run.logged).slice(0, 2000)}`,
      );
    },
  );
}

/** Writes to the raw socket every 20 ms until the connection closes (a drip feed). */
function drip(socket: Socket, next: () => string): void {
  const t = setInterval(() => (socket.destroyed ? clearInterval(t) : socket.write(next())), 20);
  socket.on('close', () => clearInterval(t));
}

describe('a service that stalls: the upload times out, one batch at a time, and nothing is lost', () => {
  const stalls: { name: string; handler: Handler }[] = [
    { name: 'accepts the connection and never answers', handler: () => undefined },
    {
      name: 'drips its response head a byte at a time, never ending it',
      handler: (req) => {
        req.resume();
        req.socket.write('HTTP/1.1 200 OK\r\n');
        drip(req.socket, () => 'x');
      },
    },
    {
      name: 'sends 102 Processing forever',
      handler: (req, res) => {
        req.resume();
        drip(req.socket, () => (res.writeProcessing(), ''));
      },
    },
  ];
  it.each(stalls)('$name', async ({ handler }) => {
    const { svc, url } = await service();
    svc.handler = handler;
    const run = await start(url, { timeoutMs: 200 });
    const ids = emit(run, 200);
    await everyErrorCounted(run, 'timeout');
    // A slow service never has more than the one batch the shipper is sending: the rest waits in the spool.
    expect(svc.maxInFlight).toBe(1);
    expect(await count(run.metrics.decisionLogBacklog, 'sink', 'http')).toBeGreaterThan(0);
    svc.handler = (req, res) => svc.ok(req, res);
    await waitFor(() => svc.accepted.length >= ids.length, 'every decision once the service answers');
    expect(svc.accepted).toEqual(ids);
    expect((await run.metrics.decisionLogLost.get()).values).toEqual([]);
  });

  it('the upload deadline fires even after a garbage collection while the upload waits', async () => {
    // A deadline held only weakly (AbortSignal.any over AbortSignal.timeout) is collected and never fires.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const { svc, url } = await service();
    svc.handler = () => gc();
    const run = await start(url, { timeoutMs: 200 });
    emit(run, 5);
    await everyErrorCounted(run, 'timeout');
  });

  it('a wedged service holds shutdown no longer than the drain deadline; what was not shipped ships at the next start', async () => {
    const { svc, url } = await service();
    svc.handler = () => undefined;
    const dir = spoolDir();
    const run = await start(url, { timeoutMs: 60_000 }, { drainOnCloseMs: 100 }, dir);
    const ids = emit(run, 20);
    await waitFor(() => svc.inFlight === 1, 'the upload to hang');
    const t0 = performance.now();
    await runs.splice(0)[0]?.log.close();
    // Without aborting the upload in flight, close() would wait for its 60 s timeout.
    expect(performance.now() - t0).toBeLessThan(5000);
    await waitFor(() => svc.inFlight === 0, 'the hung upload to be abandoned');
    const next = await service();
    await start(next.url, {}, {}, dir);
    await waitFor(() => next.svc.accepted.length >= ids.length, 'the spooled decisions at the next start');
    expect(next.svc.accepted).toEqual(ids);
  });
});

describe('shutdown with a sink that never settles and ignores the abort', () => {
  it('is bounded by the drain deadline, and the batch stays spooled', async () => {
    // A stdout whose reader stopped reading: the write's callback never runs (ConsoleSink waits for it).
    const stuck = new Writable({ highWaterMark: 1, write: () => undefined });
    const dir = spoolDir();
    const log = pipeline([new ConsoleSink(stuck)], dir, { drainOnCloseMs: 100, shipper: fastRetry });
    await log.start();
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const { record, decision } = recordWithSecrets(i);
      log.emit(record, decision);
      ids.push(decision.id);
    }
    await waitFor(() => stuck.writableLength > 0, 'the write to hang');
    const t0 = performance.now();
    await log.close();
    expect(performance.now() - t0).toBeLessThan(5000);
    const { svc, url } = await service();
    await start(url, {}, {}, dir);
    await waitFor(() => svc.accepted.length >= ids.length, 'the spooled decisions at the next start');
    expect(svc.accepted).toEqual(ids);
  });
});

describe('a 2xx with a huge, endless or encoded body acknowledges the batch; the body is not read', () => {
  const MiB = 1024 * 1024;
  const bodies: { name: string; handler: (svc: HostileService) => Handler }[] = [
    {
      name: '100 MB with its Content-Length',
      handler: (svc) => async (req, res) => {
        await svc.take(req);
        res.writeHead(200, { 'content-length': 100 * MiB });
        await svc.pour(res, Buffer.alloc(64 * 1024, 'a'), 100 * MiB);
      },
    },
    {
      name: 'endless, chunked',
      handler: (svc) => async (req, res) => {
        await svc.take(req);
        res.writeHead(200);
        await svc.pour(res, Buffer.alloc(64 * 1024, 'a'));
      },
    },
    {
      name: 'endless, Content-Encoding: gzip (a decompression bomb: zeros at about 1000:1)',
      handler: (svc) => async (req, res) => {
        await svc.take(req);
        res.writeHead(200, { 'content-encoding': 'gzip' });
        const zeros = new Readable({ read: () => void zeros.push(Buffer.alloc(1024 * 1024)) });
        const gz = createGzip();
        gz.on('data', (c: Buffer) => (svc.poured += c.length));
        res.on('close', () => zeros.destroy());
        zeros.pipe(gz).pipe(res);
      },
    },
  ];
  it.each(bodies)('$name', async ({ handler }) => {
    const { svc, url } = await service();
    svc.handler = handler(svc);
    const timeoutMs = 1000;
    const run = await start(url, { timeoutMs });
    const t0 = performance.now();
    const ids = emit(run, 50);
    await waitFor(async () => (await delivered(run)) >= ids.length, 'every decision delivered');
    // Acknowledged by the status line: not after reading (and decoding) the body until the upload timed out.
    expect(performance.now() - t0).toBeLessThan(timeoutMs);
    await waitFor(() => svc.inFlight === 0, 'the response to be abandoned');
    expect(svc.accepted).toEqual(ids);
    // The client went away after the head: what the server got out is what socket buffers hold, not the body.
    expect(svc.poured).toBeLessThan(8 * MiB);
  });

  it('a service that answers 200 before reading the upload: the batch counts as delivered, the next one follows', async () => {
    const { svc, url } = await service();
    svc.handler = (req, res) => {
      res.writeHead(200, { connection: 'close' }).end();
      res.on('finish', () => req.socket.destroy());
    };
    const run = await start(url);
    const first = emit(run, 200);
    await waitFor(async () => (await delivered(run)) >= first.length, 'the first batch acknowledged');
    const next = emit(run, 200, 200);
    await waitFor(async () => (await delivered(run)) >= first.length + next.length, 'the next batch acknowledged');
    expect((await run.metrics.decisionLogLost.get()).values).toEqual([]);
  });
});

describe('informational answers', () => {
  it('102 and 103 before the final 200: the final status acknowledges the batch', async () => {
    const { svc, url } = await service();
    svc.handler = async (req, res) => {
      await svc.take(req);
      res.writeProcessing();
      res.writeEarlyHints({ link: '</x>; rel=preload' });
      res.writeHead(200).end();
    };
    const run = await start(url);
    const ids = emit(run, 10);
    await waitFor(async () => (await delivered(run)) >= ids.length, 'every decision delivered');
    expect(svc.accepted).toEqual(ids);
    expect((await run.metrics.decisionLogSinkErrors.get()).values).toEqual([]);
  });
});

describe('redirects are never followed: a 3xx is a failed upload, retried at the configured URL', () => {
  const cases: { name: string; location: (self: string, other: string) => string; status: number }[] = [
    { name: '303 to a URL that answers a GET with 200 (the batch would be acknowledged unsent)', status: 303, location: (s) => `${s}-get` },
    { name: '307 to itself (a loop)', status: 307, location: (s) => s },
    { name: '308 to another host (which would get the batch and the headers)', status: 308, location: (_s, o) => o },
    { name: '307 to a file: URL', status: 307, location: () => 'file:///etc/passwd' },
  ];
  it.each(cases)('$name', async ({ status, location }) => {
    const { svc, url } = await service();
    const other = await service();
    let redirected = 0;
    svc.handler = async (req, res) => {
      await svc.read(req);
      if (req.method === 'GET') return void res.writeHead(200).end();
      redirected++;
      res.writeHead(status, { location: location(url, other.url) }).end();
    };
    const run = await start(url, { headers: { 'x-api-key': 'k' } });
    const ids = emit(run, 10);
    await everyErrorCounted(run, 'redirect');
    svc.handler = (req, res) => svc.ok(req, res);
    await waitFor(() => svc.accepted.length >= ids.length, 'every decision at the configured URL');
    expect(svc.accepted).toEqual(ids);
    expect(await sinkErrors(run, 'redirect')).toBe(redirected);
    expect(svc.seen.filter((s) => s.method !== 'POST')).toEqual([]);
    expect(other.svc.seen).toEqual([]);
  });
});

describe('HTTP status codes', () => {
  const retried: { status: number; why: string }[] = [
    ...[500, 502, 503, 504].map((status) => ({ status, why: 'http_5xx' })),
    ...[401, 403, 404, 405, 408, 415, 429].map((status) => ({ status, why: 'http_4xx' })),
  ];
  it.each(retried)('$status is retried until the service takes the batch: nothing lost', async ({ status, why }) => {
    const { svc, url } = await service();
    svc.handler = async (req, res) => {
      await svc.read(req);
      res.writeHead(status).end('the service says no');
    };
    const run = await start(url);
    const ids = emit(run, 20);
    await everyErrorCounted(run, why);
    svc.handler = (req, res) => svc.ok(req, res);
    await waitFor(() => svc.accepted.length >= ids.length, 'every decision');
    expect(svc.accepted).toEqual(ids);
    expect((await run.metrics.decisionLogLost.get()).values).toEqual([]);
  });

  it.each([400, 422])(
    '%i for every batch holding one event: the batch is split, that event alone is counted lost, the rest delivered in order',
    async (status) => {
      const { svc, url } = await service();
      const poison = '/item/13';
      svc.handler = async (req, res) => {
        const seen = await svc.read(req);
        if (seen.events.some((e) => e.input?.attributes?.request?.http?.path === poison))
          return void res.writeHead(status).end('BODY-s3cret');
        svc.accepted.push(...seen.events.map((e) => e.decision_id));
        res.writeHead(200).end();
      };
      const run = await start(url);
      const ids = emit(run, 30);
      await waitFor(() => svc.accepted.length >= ids.length - 1, 'every other decision');
      // The loss is counted once the whole batch is settled, after the service has answered its last half.
      await waitFor(async () => (await lost(run, 'sink_refused')) >= 1, 'the refused event counted lost');
      expect(svc.accepted).toEqual(ids.filter((_, i) => i !== 13));
      expect(await lost(run, 'sink_refused')).toBe(1);
      const line = run.logged.find((l) => l.msg === 'decision-log events lost');
      expect(line?.fields).toMatchObject({ lost: 1, why: 'sink_refused', code: 'ERR_DECISIONLOG_SINK' });
      expect(JSON.stringify(line?.fields)).toContain(`HTTP ${status}`);
      expect(JSON.stringify(run.logged)).not.toContain('BODY-s3cret');
      // Bisection: a few requests per batch, not one per event.
      expect(svc.seen.length).toBeLessThan(30);
    },
  );

  it('400 for every event (a service that refuses all of them): nothing is counted lost; once it takes them, all are delivered in order', async () => {
    const { svc, url } = await service();
    let refusing = true;
    svc.handler = async (req, res) => {
      const seen = await svc.read(req);
      if (refusing) return void res.writeHead(400).end();
      svc.accepted.push(...seen.events.map((e) => e.decision_id));
      res.writeHead(200).end();
    };
    const run = await start(url);
    const ids = emit(run, 30);
    // Split down to single events, each refused, and tried again: still nothing lost.
    await waitFor(() => svc.seen.filter((r) => r.events.length === 1).length >= 60, 'two rounds of single-event uploads');
    expect((await run.metrics.decisionLogLost.get()).values).toEqual([]);
    refusing = false;
    await waitFor(() => svc.accepted.length >= ids.length, 'every decision');
    expect(svc.accepted).toEqual(ids);
    expect((await run.metrics.decisionLogLost.get()).values).toEqual([]);
  });

  it('413 for a batch larger than the service takes: the batch is split until it fits, nothing lost', async () => {
    const { svc, url } = await service();
    svc.handler = async (req, res) => {
      const seen = await svc.read(req);
      if (seen.events.length > 4) return void res.writeHead(413).end();
      svc.accepted.push(...seen.events.map((e) => e.decision_id));
      res.writeHead(200).end();
    };
    const run = await start(url);
    const ids = emit(run, 40);
    await waitFor(() => svc.accepted.length >= ids.length, 'every decision');
    expect(svc.accepted).toEqual(ids);
    expect((await run.metrics.decisionLogLost.get()).values).toEqual([]);
  });
});

describe('Retry-After on 429 and 503', () => {
  /** The gap between the refused upload and the retry, with a backoff that alone would retry within 50 ms. */
  async function retryGap(status: number, retryAfter: () => string, maxRetryDelayMs: number): Promise<number> {
    const { svc, url } = await service();
    svc.handler = async (req, res) => {
      await svc.read(req);
      if (svc.seen.length > 1) return void res.writeHead(200).end();
      res.writeHead(status, { 'retry-after': retryAfter() }).end();
    };
    emit(await start(url, {}, { shipper: { ...fastRetry, maxRetryDelayMs } }), 1);
    await waitFor(() => svc.seen.length >= 2, 'the retry', 30_000);
    return (svc.seen[1] as Seen).at - (svc.seen[0] as Seen).at;
  }

  it.each([
    { name: 'delta-seconds on 503', status: 503, value: () => '1' },
    { name: 'an HTTP-date 2 s ahead on 429', status: 429, value: () => new Date(Date.now() + 2000).toUTCString() },
  ])('is honoured: $name', async ({ status, value }) => {
    expect(await retryGap(status, value, 10_000)).toBeGreaterThanOrEqual(900);
  });

  // Past the ceiling, the wait is the ceiling: not longer, and not the 1 ms a Node timer gives a delay past 2^31-1 ms.
  it.each([
    { name: 'longer than the ceiling (100 s)', value: '100' },
    { name: 'huge (1e12 seconds)', value: '1000000000000' },
  ])('waits retry.maxDelayMs, no longer: $name', async ({ value }) => {
    const gap = await retryGap(503, () => value, 300);
    expect(gap).toBeGreaterThanOrEqual(250);
    expect(gap).toBeLessThan(1500);
  });

  it.each([
    { name: '1e12 written as a float', value: '1e12' },
    { name: 'negative', value: '-5' },
    { name: 'fractional', value: '1.5' },
    { name: 'garbage', value: 'soon, maybe' },
    { name: 'a date in the past', value: 'Thu, 01 Jan 1970 00:00:00 GMT' },
  ])('is no hint: $name (the backoff alone)', async ({ value }) => {
    expect(await retryGap(503, () => value, 300)).toBeLessThan(250);
  });
});

describe('connection faults are counted by kind and retried', () => {
  it('a service that resets the connection mid-upload', async () => {
    const { svc, url } = await service();
    svc.handler = (req) => void req.once('data', () => req.socket.resetAndDestroy());
    const run = await start(url);
    const ids = emit(run, 20);
    await everyErrorCounted(run, 'network');
    svc.handler = (req, res) => svc.ok(req, res);
    await waitFor(() => svc.accepted.length >= ids.length, 'every decision');
    expect(svc.accepted).toEqual(ids);
  });

  it('a service that does not speak HTTP', async () => {
    const raw = createTCPServer((s) => s.end('SSH-2.0-OpenSSH_9.6\r\n'));
    raw.listen(0, '127.0.0.1');
    await once(raw, 'listening');
    const run = await start(`http://127.0.0.1:${(raw.address() as AddressInfo).port}/logs`);
    emit(run, 5);
    await everyErrorCounted(run, 'network');
    raw.close();
  });

  it('TLS to a service whose certificate does not verify: counted as tls, named in the log, nothing sent', async () => {
    const pki = mintTestPKI(tempDir());
    const tls = createTLSServer({ cert: pki.envoy.cert, key: pki.envoy.key });
    const { svc } = await service(tls);
    const url = `https://127.0.0.1:${(tls.address() as AddressInfo).port}/logs`;
    const run = await start(url);
    emit(run, 5);
    await everyErrorCounted(run, 'tls');
    expect(svc.seen).toEqual([]);
    const detail = JSON.stringify(run.logged.find((l) => l.msg.startsWith('decision-log sink failed'))?.fields);
    expect(detail).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
  });

  it('a host name that does not resolve (RFC 6761 .invalid): counted as dns', async () => {
    const run = await start('http://verdict-decision-log.invalid/logs');
    emit(run, 5);
    await everyErrorCounted(run, 'dns');
    const detail = JSON.stringify(run.logged.find((l) => l.msg.startsWith('decision-log sink failed'))?.fields);
    expect(detail).toMatch(/ENOTFOUND|EAI_AGAIN/);
  });
});

describe('sink failures are logged at a bounded rate, never with the response body or a credential', () => {
  it('hundreds of failures a second give about one log line a second, counting the rest', async () => {
    const { svc, url } = await service();
    svc.handler = async (req, res) => {
      await svc.read(req);
      res.writeHead(500).end('BODY-s3cret: the service answers with something it should not');
    };
    const headers = { authorization: 'Bearer hdr-s3cret', 'x-api-key': 'key-s3cret' };
    const t0 = performance.now();
    const run = await start(`${url}?token=url-s3cret`, { headers }, { shipper: { ...fastRetry, minRetryDelayMs: 1, maxRetryDelayMs: 2 } });
    emit(run, 5);
    await everyErrorCounted(run, 'http_5xx', 200);
    const seconds = (performance.now() - t0) / 1000;
    const lines = run.logged.filter((l) => l.msg.startsWith('decision-log sink failed'));
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.length).toBeLessThanOrEqual(Math.ceil(seconds) + 1);
    expect(lines[0]?.fields).toMatchObject({ sink: 'http', code: 'ERR_DECISIONLOG_SINK', why: 'http_5xx' });
    expect(svc.seen[0]?.url).toBe('/logs?token=url-s3cret');
    const text = JSON.stringify(run.logged);
    for (const secret of ['BODY-s3cret', 'hdr-s3cret', 'key-s3cret', 'url-s3cret']) expect(text).not.toContain(secret);
  });
});

describe('config refuses HTTP sink settings that could only fail at every upload, or leak', () => {
  const http = (over: Record<string, unknown>) => ({ decisionLog: { http: { url: 'http://127.0.0.1:1/logs', ...over } } });
  const cases: { name: string; doc: unknown; mentions: string; secret?: string }[] = [
    {
      name: 'a header value with a line break',
      doc: http({ headers: { authorization: 'Bearer s3\ncret' } }),
      mentions: 'authorization',
      secret: 's3',
    },
    {
      name: 'a header value with NUL',
      doc: http({ headers: { authorization: 'Bearer s3\u0000cret' } }),
      mentions: 'authorization',
      secret: 's3',
    },
    { name: 'a header name that is not a token', doc: http({ headers: { 'a b': 'x' } }), mentions: 'a b' },
    ...['Content-Encoding', 'content-type', 'Content-Length', 'host', 'transfer-encoding', 'connection'].map((h) => ({
      name: `a header verdict or the HTTP client sets (${h})`,
      doc: http({ headers: { [h]: 'x' } }),
      mentions: h,
    })),
    {
      name: 'the same header twice in different case',
      doc: http({ headers: { Authorization: 'Bearer a', authorization: 'Bearer b' } }),
      mentions: 'more than once',
    },
    {
      name: 'a URL with credentials',
      doc: http({ url: 'https://user:pa55word@logs.example/logs' }),
      mentions: 'credentials',
      secret: 'pa55word',
    },
    { name: 'a retry delay past what a timer can hold', doc: { decisionLog: { retry: { maxDelayMs: 3e9 } } }, mentions: 'maxDelayMs' },
  ];
  it.each(cases)('$name', ({ doc, mentions, secret }) => {
    const err = verdictErrorOf(() => validateConfig(doc));
    expect(err.code).toBe('ERR_CONFIG');
    expect(err.message).toContain(mentions);
    if (secret) expect(err.message).not.toContain(secret);
  });

  it('takes ordinary headers and a plain URL', () => {
    const c = validateConfig(http({ headers: { Authorization: 'Bearer t0k', 'X-Scope-OrgID': 'tenant-1' } }));
    expect(c.decisionLog.http?.headers).toEqual({ Authorization: 'Bearer t0k', 'X-Scope-OrgID': 'tenant-1' });
  });
});
