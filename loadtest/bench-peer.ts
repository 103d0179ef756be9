import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { packageRoot } from '../src/package-root';
import { runGhz, type LoadResult } from './lib/ghz';
import { spawnVerdict } from './lib/spawn-verdict';
import { printTable } from './lib/stats';

/**
 * verdict beside the reference peer, opa-envoy-plugin, on the same Rego (policies/default), the same
 * request, the same load, in the same run. The peer is not installed by this project: the scenario uses a
 * binary at .tools/bin/opa-envoy-plugin when one is there, and says so when not.
 */
export const PEER_BIN = join(packageRoot(), '.tools', 'bin', 'opa-envoy-plugin');

const FIXTURE = join(packageRoot(), 'test', 'fixtures', 'check-request-api.json');

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** extraEnv: e.g. GOMAXPROCS=1 when the peer is pinned to one core (Go sizes its scheduler at start). */
export async function startPeer(
  bin: string,
  extraEnv: Record<string, string> = {},
): Promise<{ pid: number; target: string; rssKiB: () => number; stop: () => Promise<void> }> {
  const port = await freePort();
  const child = spawn(
    bin,
    [
      'run',
      '--server',
      '--addr=127.0.0.1:0',
      `--set=plugins.envoy_ext_authz_grpc.addr=127.0.0.1:${port}`,
      '--set=plugins.envoy_ext_authz_grpc.path=envoy/authz/allow',
      '--set=decision_logs.console=false',
      '--log-level=error',
      '-b',
      join(packageRoot(), 'policies', 'default'),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...extraEnv } },
  );
  const target = `127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`opa-envoy-plugin exited with ${child.exitCode}`);
    try {
      await runGhz({ target, dataFile: FIXTURE, rps: 0, total: 1, concurrency: 1, connections: 1 });
      break;
    } catch {
      if (Date.now() > deadline) throw new Error('opa-envoy-plugin did not start serving within 30 s');
    }
  }
  const { readFileSync } = await import('node:fs');
  return {
    pid: child.pid!,
    target,
    rssKiB: () => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? NaN),
    stop: () =>
      new Promise((resolve) => (child.exitCode !== null ? resolve() : (child.once('exit', () => resolve()), child.kill('SIGTERM')))),
  };
}

export async function run(seconds = 10): Promise<Record<string, unknown>> {
  if (!existsSync(PEER_BIN)) {
    const note = `opa-envoy-plugin: not measured — ${PEER_BIN} is not present (setup does not install it)`;
    process.stdout.write(`${note}\n`);
    return { skipped: note };
  }
  const bin = PEER_BIN;
  const rows: Record<string, unknown>[] = [];
  const results: Record<string, { fixed: LoadResult; saturated: LoadResult; rssMiB: number }> = {};
  for (const who of ['verdict', 'opa-envoy-plugin'] as const) {
    const server =
      who === 'verdict'
        ? await spawnVerdict(packageRoot(), ['--set', 'server.workers=1', '--set', 'cache.enabled=false']).then((v) => ({
            target: `127.0.0.1:${v.grpcPort}`,
            rssKiB: () => v.rssKiB(),
            stop: () => v.stop(),
          }))
        : await startPeer(bin);
    try {
      await runGhz({ target: server.target, dataFile: FIXTURE, rps: 0, total: 3000, concurrency: 20, connections: 4 });
      const fixed = await runGhz({
        target: server.target,
        dataFile: FIXTURE,
        rps: 2000,
        durationS: seconds,
        concurrency: 100,
        connections: 4,
      });
      const saturated = await runGhz({
        target: server.target,
        dataFile: FIXTURE,
        rps: 0,
        durationS: seconds,
        concurrency: 64,
        connections: 4,
      });
      results[who] = { fixed, saturated, rssMiB: server.rssKiB() / 1024 };
      rows.push({
        server: who,
        'max req/s': saturated.rps,
        'p50 ms @2000/s': fixed.p50Ms,
        'p99 ms @2000/s': fixed.p99Ms,
        'RSS MiB': server.rssKiB() / 1024,
      });
    } finally {
      await server.stop();
    }
  }
  const v = results.verdict!;
  const p = results['opa-envoy-plugin']!;
  rows.push({
    server: 'ratio verdict/peer',
    'max req/s': v.saturated.rps / p.saturated.rps,
    'p50 ms @2000/s': v.fixed.p50Ms / p.fixed.p50Ms,
    'p99 ms @2000/s': v.fixed.p99Ms / p.fixed.p99Ms,
    'RSS MiB': v.rssMiB / p.rssMiB,
  });
  printTable('verdict vs opa-envoy-plugin (same Rego, same request, same load, one run; uncached)', rows);
  return { rows };
}
