import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';

export interface VerdictProcess {
  pid: number;
  grpcPort: number;
  httpPort: number | null;
  /** Resident set size of the server process, in KiB (from /proc). */
  rssKiB(): number;
  /** Peak RSS (VmHWM), KiB. */
  peakRssKiB(): number;
  stop(): Promise<void>;
  /** Sends a signal (SIGKILL for a crash) and resolves when the process has exited. */
  kill(signal: NodeJS.Signals): Promise<void>;
  /** Calls `listener` with every later stderr (log) line; returns the function that stops it. */
  onLog(listener: (line: string) => void): () => void;
}

/**
 * Starts `verdict serve` as its own process (so its RSS and CPU are its own) on free ports and waits for
 * its "verdict serving" log line (info level: keep log.level at info or below), which names the bound ports. RSS figures are of the top process (in
 * cluster mode, the primary; use workers=1 for the server's own RSS).
 */
export function spawnVerdict(root: string, args: string[] = [], nodeArgs: string[] = []): Promise<VerdictProcess> {
  return spawnServe(process.execPath, [...nodeArgs, join(root, 'bin', 'verdict.js')], args, process.env);
}

/**
 * The same, started as a user starts it: through the `bin/verdict` launcher, with its memory defaults
 * (docs/memory.md), on this process's node. The launcher execs node, so the pid is the server's own.
 */
export function spawnVerdictLauncher(root: string, args: string[] = []): Promise<VerdictProcess> {
  const env = { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}` };
  return spawnServe(join(root, 'bin', 'verdict'), [], args, env);
}

function spawnServe(file: string, prefix: string[], args: string[], env: NodeJS.ProcessEnv): Promise<VerdictProcess> {
  const child = spawn(file, [...prefix, 'serve', '--set', 'server.grpc.port=0', '--set', 'server.http.port=0', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env,
  });
  return new Promise((resolve, reject) => {
    const lines: string[] = [];
    const rl = createInterface({ input: child.stderr! });
    const onExit = (code: number | null): void => reject(new Error(`verdict exited (${code}) before serving:\n${lines.join('\n')}`));
    child.once('exit', onExit);
    rl.on('line', (line) => {
      if (lines.length < 200) lines.push(line);
      // In cluster mode each worker logs its own line; the primary's (no "worker" field) comes last.
      if (!line.includes('verdict serving') || line.includes('"worker"')) return;
      const msg = JSON.parse(line) as { grpcPort: number; httpPort: number | null };
      child.off('exit', onExit);
      resolve(handle(child, rl, msg.grpcPort, msg.httpPort));
    });
  });
}

function handle(child: ChildProcess, rl: Interface, grpcPort: number, httpPort: number | null): VerdictProcess {
  const status = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  };
  return {
    pid: child.pid!,
    grpcPort,
    httpPort,
    rssKiB: () => status('VmRSS'),
    peakRssKiB: () => status('VmHWM'),
    stop: () => signalAndWait(child, 'SIGTERM'),
    kill: (signal) => signalAndWait(child, signal),
    onLog: (listener) => {
      rl.on('line', listener);
      return () => void rl.off('line', listener);
    },
  };
}

function signalAndWait(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}
