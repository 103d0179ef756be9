import { spawn, type ChildProcess } from 'node:child_process';
import { renderEnvoyConfigFile } from './envoy-template';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { packageRoot } from '../../src/package-root';
import { tempDir } from './verdict-harness';

export interface L4Envoy {
  /** The ext_authz-guarded listener. */
  port: number;
  /** ext_authz.fastpath.* counters from the admin /stats. */
  extAuthzStats(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

/** An echo upstream on 127.0.0.1, port 0. */
export async function startEchoServer(): Promise<{ port: number; server: Server }> {
  const server = createServer((s) => s.pipe(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('echo server has no port');
  return { port: address.port, server };
}

/** Real Envoy (.tools/bin/envoy) with envoy/fastpath-l4.yaml; ready once its listener is bound. */
export async function startL4Envoy(verdictGrpcPort: number, upstreamPort: number): Promise<L4Envoy> {
  const dir = tempDir('verdict-envoy-');
  const configPath = renderEnvoyConfigFile(join(packageRoot(), 'envoy', 'fastpath-l4.yaml'), dir, {
    VERDICT_PORT: verdictGrpcPort,
    APP_PORT: upstreamPort,
  });
  const adminPath = join(dir, 'admin-address');
  const envoy: ChildProcess = spawn(
    join(packageRoot(), '.tools', 'bin', 'envoy'),
    ['-c', configPath, '--admin-address-path', adminPath, '--base-id', String(process.pid % 60000), '-l', 'error', '--concurrency', '1'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  envoy.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<never>((_, reject) => envoy.once('exit', (code) => reject(new Error(`envoy exited ${code}: ${stderr}`))));
  exited.catch(() => {});
  const admin = await Promise.race([pollAdmin(adminPath), exited]);
  const port = await Promise.race([listenerPort(admin), exited]);
  return {
    port,
    extAuthzStats: () => stats(admin),
    stop: async () => {
      if (envoy.exitCode !== null) return;
      const gone = new Promise<void>((resolve) => envoy.once('exit', () => resolve()));
      envoy.kill('SIGTERM');
      await gone;
    },
  };
}

async function pollAdmin(path: string): Promise<string> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    try {
      const text = readFileSync(path, 'utf8').trim();
      if (text) return `http://${text}`;
    } catch {
      // not written yet
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('envoy admin address never appeared');
}

async function listenerPort(admin: string): Promise<number> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${admin}/listeners?format=json`);
      const body = (await res.json()) as {
        listener_statuses?: { name: string; local_address?: { socket_address?: { port_value?: number } } }[];
      };
      const port = body.listener_statuses?.find((l) => l.name === 'fastpath_l4')?.local_address?.socket_address?.port_value;
      if (port) return port;
    } catch {
      // admin not serving yet
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('envoy listener never bound');
}

async function stats(admin: string): Promise<Record<string, number>> {
  const res = await fetch(`${admin}/stats?filter=^ext_authz\\.fastpath\\.`);
  const out: Record<string, number> = {};
  for (const line of (await res.text()).split('\n')) {
    const m = /^ext_authz\.fastpath\.(\w+): (\d+)$/.exec(line.trim());
    if (m?.[1] && m[2]) out[m[1]] = Number(m[2]);
  }
  return out;
}
