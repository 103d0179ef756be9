import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/package-root';
import { spawnVerdict, type VerdictProcess } from '../../loadtest/lib/spawn-verdict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../helpers/wait-for';
import { checkClient, httpCheckRequest, tempDir, type CheckClient } from '../helpers/verdict-harness';
import * as grpc from '@grpc/grpc-js';

// `verdict serve` in cluster mode: two worker processes share one gRPC port; the primary serves
// aggregated metrics and readiness, and SIGTERM drains and stops everything.

describe('cluster mode (verdict serve, 2 workers)', () => {
  let verdict: VerdictProcess;
  const clients: CheckClient[] = [];
  const logDir = tempDir('verdict-cluster-log-');
  const logFile = join(logDir, 'decisions.log');
  beforeAll(async () => {
    verdict = await spawnVerdict(packageRoot(), [
      '--set',
      'server.workers=2',
      '--set',
      `decisionLog.file.path=${logFile}`,
      '--set',
      'decisionLog.batch.delayMs=0',
    ]);
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await verdict?.stop();
  });

  it('serves Checks from both workers on one port, with metrics summed by the primary', async () => {
    // Separate subchannel pools give separate HTTP/2 connections, which the primary deals round-robin.
    for (let i = 0; i < 4; i++) clients.push(checkClient(`127.0.0.1:${verdict.grpcPort}`, { 'grpc.use_local_subchannel_pool': 1 }));
    const results = await Promise.all(
      clients.flatMap((c) => Array.from({ length: 25 }, () => c.check(httpCheckRequest({ method: 'GET', path: '/healthz' })))),
    );
    expect(results.filter((r) => r.okResponse === undefined)).toEqual([]);
    const metrics = await (await fetch(`http://127.0.0.1:${verdict.httpPort}/metrics`)).text();
    const total = /verdict_decisions_total\{result="allow",engine="opa",reason="ALLOWED"\} (\d+)/.exec(metrics);
    expect(Number(total?.[1])).toBe(100);
    expect(metrics).toMatch(/verdict_process_cpu_user_seconds_total/);
    // An info gauge is one bundle, not one per worker.
    expect(metrics).toMatch(/verdict_bundle_info\{name="default",[^}]*\} 1\n/);
    expect((await fetch(`http://127.0.0.1:${verdict.httpPort}/readyz`)).status).toBe(200);
  });

  it('gives each worker its own decision-log file, and together they hold every decision once', async () => {
    const files = [join(logDir, 'decisions.worker-0.log'), join(logDir, 'decisions.worker-1.log')];
    const ids = (): string[] =>
      files
        .flatMap((f) =>
          existsSync(f)
            ? readFileSync(f, 'utf8')
                .split('\n')
                .filter((l) => l !== '')
            : [],
        )
        .map((l) => (JSON.parse(l) as { decision_id: string }).decision_id);
    await waitFor(() => ids().length >= 100, "all 100 decisions in the workers' files", 15_000, 50);
    expect(ids()).toHaveLength(100);
    expect(new Set(ids()).size).toBe(100);
    expect(files.every((f) => existsSync(f))).toBe(true);
  });

  it('stops on SIGTERM', async () => {
    await verdict.stop();
    await expect(fetch(`http://127.0.0.1:${verdict.httpPort}/healthz`)).rejects.toThrow();
    const c = checkClient(`127.0.0.1:${verdict.grpcPort}`);
    await expect(c.check(httpCheckRequest({}))).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    c.close();
  });
});
