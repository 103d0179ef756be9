import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BundleForge, HOSTILE_LIMITS, type HostileCase } from '../helpers/hostile-bundles';
import { VerdictChild, type LogLine } from '../helpers/verdict-child';
import { checkClient, headerValue, httpCheckRequest, tempDir, type CheckClient } from '../helpers/verdict-harness';

// Every class of hostile bundle, delivered by the file source and by the HTTP source to a verdict running
// as its own process: each is refused with its code, a probe Check keeps getting the good bundle's answer
// while the bundle is being refused and after, and the process is the same PID at the end.

const limitSets = Object.entries(HOSTILE_LIMITS).map(([k, v]) => `bundles.limits.${k}=${v}`);
const refusal = (l: LogLine): boolean => l.msg === 'policy bundle refused';

/** Checks in a loop until stopped; every answer must come from the good bundle. */
class Probe {
  private running = true;
  readonly answers: (string | undefined)[] = [];
  private readonly done: Promise<void>;
  constructor(private readonly client: CheckClient) {
    this.done = this.loop();
  }
  private async loop(): Promise<void> {
    while (this.running) {
      const res = await this.client.check(httpCheckRequest({ path: '/probe' })).catch((e: Error) => ({ error: e.message }));
      // A deny names its reason (e.g. ERR_POLICY_TIMEOUT if loading stalled the loop), so a failure says why.
      const answer =
        'error' in res
          ? `error: ${res.error}`
          : (headerValue(res.okResponse?.headers, 'x-bundle-rev') ??
            `deny: ${headerValue(res.deniedResponse?.headers, 'x-verdict-reason')}`);
      this.answers.push(answer);
    }
  }
  async stop(): Promise<(string | undefined)[]> {
    this.running = false;
    await this.done;
    return this.answers;
  }
}

async function refuseEach(verdict: VerdictChild, cases: HostileCase[], deliver: (c: HostileCase) => void): Promise<Record<string, string>> {
  const client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
  const codes: Record<string, string> = {};
  try {
    for (const c of cases) {
      const probe = new Probe(client);
      const refused = verdict.waitForLog(refusal);
      deliver(c);
      codes[c.name] = (await refused).code ?? 'none';
      // During and after: every probe answer (made while the bundle was read, verified and refused) is GOOD.
      const after = await client.check(httpCheckRequest({ path: '/after' }));
      const answers = await probe.stop();
      expect(answers.length).toBeGreaterThan(0);
      expect(new Set(answers)).toEqual(new Set(['GOOD']));
      expect(headerValue(after.okResponse?.headers, 'x-bundle-rev')).toBe('GOOD');
    }
  } finally {
    client.close();
  }
  return codes;
}

const expected = (cases: HostileCase[]): Record<string, string> => Object.fromEntries(cases.map((c) => [c.name, c.code]));

describe('hostile bundles through the file source (verdict as a child process)', () => {
  let forge: BundleForge;
  let verdict: VerdictChild;
  let live: string;
  let dir: string;
  let n = 0;
  const publish = (bytes: Buffer): void => {
    const tmp = join(dir, `.pub-${n++}`);
    writeFileSync(tmp, bytes);
    renameSync(tmp, live);
  };

  beforeAll(async () => {
    forge = await BundleForge.create();
    dir = tempDir('verdict-hostile-file-');
    live = join(dir, 'bundle.tar.gz');
    publish(forge.good());
    verdict = await VerdictChild.start([
      'bundles.source.type=file',
      `bundles.source.path=${live}`,
      'bundles.source.debounceMs=20',
      // Long enough that a bounded refusal is never mistaken for a timeout on a loaded CI host; the looping
      // start function still has to hit it (ERR_BUNDLE_LOAD_TIMEOUT).
      'bundles.loadTimeoutMs=8000',
      ...forge.trustSets(),
      ...limitSets,
    ]);
  }, 60_000);
  afterAll(() => verdict?.stop());

  it('refuses every hostile bundle with its code and keeps the good answer, same PID', async () => {
    const pid = verdict.pid;
    const cases = forge.hostile();
    expect(await refuseEach(verdict, cases, (c) => publish(c.bytes))).toEqual(expected(cases));
    expect(verdict.alive).toBe(true);
    expect(verdict.pid).toBe(pid);
    const metrics = await verdict.metrics();
    for (const code of new Set(cases.map((c) => c.code))) expect(metrics).toContain(`outcome="rejected",reason="${code}"}`);
  }, 120_000);

  it('refuses a watched path replaced by a FIFO and by a device (ERR_BUNDLE_FILE_TYPE), without hanging or reading it', async () => {
    const specials: HostileCase[] = [
      { name: 'FIFO at the watched path', bytes: Buffer.alloc(0), code: 'ERR_BUNDLE_FILE_TYPE' },
      { name: 'character device (/dev/zero) at the watched path', bytes: Buffer.alloc(0), code: 'ERR_BUNDLE_FILE_TYPE' },
    ];
    const codes = await refuseEach(verdict, specials, (c) => {
      const tmp = join(dir, `.special-${n++}`);
      // Node has no mkfifo(3)/mknod(2): the coreutils commands make a real FIFO and a real device node.
      if (c.name.startsWith('FIFO')) execFileSync('mkfifo', [tmp]);
      else execFileSync('mknod', [tmp, 'c', '1', '5']);
      renameSync(tmp, live);
    });
    expect(codes).toEqual(expected(specials));
    expect(verdict.alive).toBe(true);
  }, 60_000);
});

describe('hostile bundles through the HTTP source (verdict as a child process)', () => {
  let forge: BundleForge;
  let verdict: VerdictChild;
  let server: Server;
  let current: Buffer;
  let truncate = false;

  beforeAll(async () => {
    forge = await BundleForge.create();
    current = forge.good();
    // An OPA bundle service: ETag = content hash, 304 on If-None-Match.
    server = createServer((req, res) => {
      const etag = `"${createHash('sha256').update(current).digest('hex')}"`;
      if (truncate) {
        // Declares more than it sends, then cuts the connection: a truncated stream.
        res.writeHead(200, { 'content-length': String(current.length + 1000), etag });
        res.write(current.subarray(0, 100));
        res.socket?.destroy();
        return;
      }
      if (req.headers['if-none-match'] === etag) return void res.writeHead(304).end();
      res.writeHead(200, { 'content-type': 'application/gzip', etag }).end(current);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    verdict = await VerdictChild.start([
      'bundles.source.type=http',
      `bundles.source.url=http://127.0.0.1:${port}/bundle.tar.gz`,
      'bundles.source.minDelayMs=10',
      'bundles.source.maxDelayMs=30',
      'bundles.loadTimeoutMs=8000',
      ...forge.trustSets(),
      ...limitSets,
    ]);
  }, 60_000);
  afterAll(async () => {
    await verdict?.stop();
    server?.close();
  });

  it('refuses every hostile bundle with its code and keeps the good answer, same PID', async () => {
    const pid = verdict.pid;
    const cases = forge.hostile();
    expect(await refuseEach(verdict, cases, (c) => (current = c.bytes))).toEqual(expected(cases));
    expect(verdict.pid).toBe(pid);
    expect(verdict.alive).toBe(true);
  }, 120_000);

  it('reports a truncated HTTP body as a source error and keeps serving', async () => {
    const client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
    const failed = verdict.waitForLog((l) => l.msg === 'policy bundle source failed');
    current = Buffer.concat([forge.good(), Buffer.from('changed')]);
    truncate = true;
    expect((await failed).code).toBe('ERR_BUNDLE_SOURCE');
    truncate = false;
    const res = await client.check(httpCheckRequest({ path: '/after' }));
    expect(headerValue(res.okResponse?.headers, 'x-bundle-rev')).toBe('GOOD');
    client.close();
    expect(verdict.alive).toBe(true);
  }, 60_000);
});
