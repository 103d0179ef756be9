import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { RunningVerdict } from '../../src/main';
import { waitFor } from '../helpers/decisionlog-fixtures';
import { LogService } from '../helpers/log-service';
import { checkClient, httpCheckRequest, startTestVerdict, tempDir, type CheckClient } from '../helpers/verdict-harness';

const root = join(__dirname, '..', '..');

/** timeoutMs: short where a stall must be seen; long where a slow answer must not count as lost (a timed-out upload is sent again). */
function logSettings(url: string, spoolDir: string, timeoutMs = 300): string[] {
  return [
    `decisionLog.http.url=${url}`,
    `decisionLog.http.timeoutMs=${timeoutMs}`,
    `decisionLog.spool.dir=${spoolDir}`,
    'decisionLog.batch.delayMs=5',
    'decisionLog.batch.bytes=4096',
    'decisionLog.retry.minDelayMs=10',
    'decisionLog.retry.maxDelayMs=100',
  ];
}

/** Sequential Checks (so their order is defined); returns the decision ids Envoy saw, in order. */
async function decide(client: CheckClient, n: number, from: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = from; i < from + n; i++) {
    const res = await client.check(httpCheckRequest({ method: i % 3 === 0 ? 'DELETE' : 'GET', path: `/public/${i}.html` }));
    ids.push(res.dynamicMetadata?.fields?.decision_id?.stringValue as string);
  }
  return ids;
}

describe('decision logs to an HTTP service that fails, stalls and recovers', () => {
  const service = new LogService();
  let verdict: RunningVerdict;
  let client: CheckClient;
  afterAll(async () => {
    client?.close();
    await verdict?.stop();
    await service.stop();
  });

  it('delivers every decision exactly once and in order', async () => {
    const url = await service.start();
    verdict = await startTestVerdict([...logSettings(url, join(tempDir(), 'spool')), 'cache.enabled=false']);
    client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
    service.mode = 'fail';
    const sent = await decide(client, 30, 0);
    await waitFor(() => service.seen.fail >= 2, 'the service to refuse at least twice');
    service.mode = 'stall';
    await waitFor(() => service.seen.stall >= 1, 'a stalled upload');
    sent.push(...(await decide(client, 30, 30)));
    service.mode = 'ok';
    await waitFor(() => service.received.length >= 60, 'all 60 decisions at the service');
    const ids = service.received.map((e) => e.decision_id);
    expect(ids).toEqual(sent);
    expect(new Set(ids).size).toBe(60);
    const text = await (await fetch(`http://127.0.0.1:${verdict.httpPort}/metrics`)).text();
    expect(text).toMatch(/verdict_decisionlog_sink_errors_total\{sink="http",why="[a-z_0-9]+"\} [1-9]/);
    expect(text).not.toMatch(/verdict_decisionlog_lost_total\{/);
    const e = service.received[0] as Record<string, unknown>;
    expect(Object.keys(e)).toEqual(
      expect.arrayContaining([
        'decision_id',
        'bundles',
        'path',
        'input',
        'result',
        'timestamp',
        'metrics',
        'labels',
        'bundle_sha256',
        'engine',
        'reason',
        'cached',
        'fastpath',
        'prev_hash',
      ]),
    );
  });
});

describe('decision logs across kill -9', () => {
  const service = new LogService();
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  });
  afterAll(() => service.stop());

  function serve(settings: string[]): Promise<{ child: ChildProcess; port: number }> {
    const args = [
      join(root, 'bin/verdict.js'),
      'serve',
      ...['server.grpc.port=0', 'server.http.port=null', 'server.workers=1', 'log.level=info', ...settings].flatMap((s) => ['--set', s]),
    ];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(child);
    return new Promise((resolve, reject) => {
      let err = '';
      child.stderr?.on('data', (d: Buffer) => {
        err += d.toString();
        const m = /"grpcPort":(\d+)/.exec(err);
        if (m) resolve({ child, port: Number(m[1]) });
      });
      child.on('exit', (code) => reject(new Error(`verdict exited ${code}: ${err}`)));
    });
  }

  it('loses nothing: decisions spooled while the service is down arrive after a restart, once, in order', async () => {
    const url = await service.start();
    const spool = join(tempDir(), 'spool');
    service.mode = 'fail';
    const first = await serve(logSettings(url, spool, 5000));
    const c1 = checkClient(`127.0.0.1:${first.port}`);
    const sent = await decide(c1, 40, 0);
    c1.close();
    // Killed right after the last answer: no chance to flush or drain.
    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.once('exit', r));
    expect(service.received).toHaveLength(0);
    service.mode = 'ok';
    const second = await serve(logSettings(url, spool, 5000));
    const c2 = checkClient(`127.0.0.1:${second.port}`);
    sent.push(...(await decide(c2, 10, 40)));
    c2.close();
    await waitFor(() => service.received.length >= 50, 'all 50 decisions after the restart');
    expect(service.received.map((e) => e.decision_id)).toEqual(sent);
    second.child.kill('SIGTERM');
  });
});
