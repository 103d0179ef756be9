import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pinnedTool } from './pinned-tool';
import { waitFor } from './wait-for';

export interface RunningPrometheus {
  port: number;
  /** GET /api/v1/<path>; throws on a non-success answer (bad PromQL included), naming the query. */
  api<T>(path: string, params?: Record<string, string>): Promise<T>;
  logs(): string;
  stop(): Promise<void>;
}

/**
 * Prometheus asks for a fixed --web.listen-address and does not report the port it bound, so a free
 * loopback port is found by binding port 0 and closing it just before start.
 */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The pinned Prometheus on a config text written into dir; resolves once /-/ready answers 200. */
export async function startPrometheus(dir: string, configYAML: string): Promise<RunningPrometheus> {
  const configFile = join(dir, 'prometheus.yml');
  writeFileSync(configFile, configYAML);
  const port = await freePort();
  const child = spawn(
    pinnedTool('prometheus'),
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  const append = (c: Buffer): void => void (log = (log + c.toString('utf8')).slice(-32 * 1024));
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`prometheus exited (${child.exitCode}):\n${log}`);
        return (await fetch(`${base}/-/ready`).catch(() => null))?.status === 200;
      },
      'prometheus /-/ready',
      30_000,
      50,
    );
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    port,
    async api<T>(path: string, params: Record<string, string> = {}): Promise<T> {
      const res = await fetch(`${base}/api/v1/${path}?${new URLSearchParams(params).toString()}`);
      const body = (await res.json()) as { status: string; data: T; error?: string };
      if (body.status !== 'success') throw new Error(`prometheus ${path} ${JSON.stringify(params)}: ${body.error ?? res.status}`);
      return body.data;
    },
    logs: () => log,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
