import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { packageRoot } from '../../src/package-root';
import type { TestCgroup } from '../../test/helpers/bpf-kernel';
import { tempDir } from '../../test/helpers/verdict-harness';

export interface ProbeResult {
  outcome: string;
  /** Wall time of connect() ("connect" mode) or of the whole exchange ("echo"). */
  elapsedNs: number;
  /** The probe thread's CPU time from connect() to close() (preemption excluded). */
  cpuNs: number;
}

export interface ConnectProbe {
  connect(t: { src: string; host: string; port: number; mode: 'connect' | 'echo' }): Promise<ProbeResult>;
  close(): Promise<void>;
}

let built: string | null = null;

/**
 * Builds loadtest/connect-probe.c (once per process) and starts it inside the cgroup, pinned to `cpu` when
 * given. In connect(), `src: '-'` leaves the source address and port to the kernel.
 */
export async function startConnectProbe(cgroup: TestCgroup, cpu?: number): Promise<ConnectProbe> {
  if (!built) {
    built = join(tempDir('verdict-probe-'), 'connect-probe');
    execFileSync('cc', ['-O2', '-o', built, join(packageRoot(), 'loadtest', 'connect-probe.c')]);
  }
  const child = spawn(built, cpu === undefined ? [] : [String(cpu)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const waiting: ((l: string) => void)[] = [];
  lines.on('line', (l) => waiting.shift()?.(l));
  const next = (): Promise<string> => new Promise<string>((resolve) => waiting.push(resolve));
  if ((await next()) !== 'ready') throw new Error('connect-probe did not start');
  cgroup.enter(child.pid as number);
  return {
    async connect(t) {
      const reply = next();
      child.stdin.write(`${t.src} ${t.host} ${t.port} ${t.mode}\n`);
      const [outcome = '', ns = '0', , cpu = '0'] = (await reply).split(' ');
      return { outcome, elapsedNs: Number(ns), cpuNs: Number(cpu) };
    },
    close: async () => {
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGKILL');
      await gone;
    },
  };
}
