import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/package-root';

// The built CLI started as a newcomer starts it (`node bin/verdict.js serve`, embedded default bundle), its
// stderr read line by line. Waits are on lines and exits, never on time.

interface Run {
  child: ChildProcess;
  lines: string[];
  /** Resolves with the first line matching, or rejects when the process exits first. */
  waitFor(pattern: RegExp): Promise<string>;
  exited: Promise<number | null>;
}

function serve(...sets: string[]): Run {
  const args = [join(packageRoot(), 'bin', 'verdict.js'), 'serve', ...sets.flatMap((s) => ['--set', s])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const lines: string[] = [];
  const waiters: { pattern: RegExp; resolve: (l: string) => void; reject: (e: Error) => void }[] = [];
  let partial = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      lines.push(line);
      for (const w of waiters.filter((x) => x.pattern.test(line))) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      if (partial !== '') lines.push(partial);
      for (const w of waiters.splice(0)) w.reject(new Error(`exited ${code} before ${w.pattern}; stderr:\n${lines.join('\n')}`));
      resolve(code);
    }),
  );
  const waitFor = (pattern: RegExp): Promise<string> => {
    const seen = lines.find((l) => pattern.test(l));
    if (seen) return Promise.resolve(seen);
    if (child.exitCode !== null) return Promise.reject(new Error(`already exited; stderr:\n${lines.join('\n')}`));
    return new Promise((resolve, reject) => waiters.push({ pattern, resolve, reject }));
  };
  return { child, lines, waitFor, exited };
}

/** Every line is one JSON object with exactly one `msg` key (a second `msg` would be lost by JSON parsers). */
function parseAll(lines: readonly string[]): Record<string, unknown>[] {
  return lines
    .filter((l) => l !== '')
    .map((line) => {
      expect(() => JSON.parse(line) as unknown, line).not.toThrow();
      expect(line.match(/"msg":/g)?.length, line).toBe(1);
      return JSON.parse(line) as Record<string, unknown>;
    });
}

function occupy(): Promise<{ server: Server; port: number }> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port }));
  });
}

describe('first run of verdict serve', () => {
  it('starts on the embedded default bundle with no warning, every stderr line JSON, and drains on SIGTERM', async () => {
    const run = serve('server.grpc.port=0', 'server.http.port=0', 'server.workers=1');
    await run.waitFor(/"msg":"verdict serving"/);
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    const events = parseAll(run.lines);
    expect(events.filter((e) => e.level !== 'info' && e.level !== 'debug')).toEqual([]);
    expect(events.map((e) => e.msg)).toEqual(expect.arrayContaining(['policy bundle active', 'verdict serving', 'draining']));
  });

  describe('with the gRPC port already in use', () => {
    let taken: { server: Server; port: number };
    beforeAll(async () => {
      taken = await occupy();
    });
    afterAll(() => new Promise<void>((resolve) => taken.server.close(() => resolve())));

    const shapes = [
      { name: 'one process', workers: '1' },
      { name: 'a cluster of two workers', workers: '2' },
    ];
    for (const shape of shapes) {
      it(`${shape.name}: one fatal JSON line with ERR_LISTEN naming the address and key, no stack, exit 1`, async () => {
        const run = serve(`server.grpc.port=${taken.port}`, 'server.http.port=0', `server.workers=${shape.workers}`);
        expect(await run.exited).toBe(1);
        const events = parseAll(run.lines);
        const failures = events.filter((e) => e.level !== 'info' && e.level !== 'debug');
        expect(failures).toHaveLength(1);
        expect(failures[0]).toMatchObject({
          code: 'ERR_LISTEN',
          detail: expect.stringContaining(`127.0.0.1:${taken.port} is already in use`),
        });
        expect(String(failures[0]?.detail)).toContain('server.grpc.port');
        expect(run.lines.join('\n')).not.toMatch(/^\s+at /m);
      });
    }
  });
});
