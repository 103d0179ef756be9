import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { TestCgroup } from './bpf-kernel';
import { waitFor as pollUntil } from './wait-for';

/** What happened to one connection attempt from the client process. */
export interface ConnectOutcome {
  /** refused: connect() failed (EPERM is the kernel program); echoed: data came back; closed: the peer closed. */
  outcome: 'refused' | 'echoed' | 'closed';
  code?: string;
  /** From connect() to the outcome, in ns, measured inside the client. */
  elapsedNs: number;
}

// The client: one line in ({src, host, port}), one line out. Runs in the test cgroup, so every connect()
// it makes goes through the attached programs; the test process itself stays outside.
const CLIENT = `
const net = require('node:net');
const rl = require('node:readline').createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const { src, host, port } = JSON.parse(line);
  const t0 = process.hrtime.bigint();
  let done = false;
  let connected = false;
  const finish = (r) => { if (done) return; done = true; s.destroy(); process.stdout.write(JSON.stringify({ ...r, elapsedNs: Number(process.hrtime.bigint() - t0) }) + '\\n'); };
  const s = net.connect({ host, port, localAddress: src });
  s.on('connect', () => { connected = true; s.write('ping\\n'); });
  s.on('data', () => finish({ outcome: 'echoed' }));
  s.on('error', (e) => finish(!connected ? { outcome: 'refused', code: e.code } : { outcome: 'closed', code: e.code }));
  s.on('close', () => finish({ outcome: 'closed' }));
});
process.stdout.write('ready\\n');
`;

export interface CgroupClient {
  connect(target: { src: string; host: string; port: number }): Promise<ConnectOutcome>;
  close(): Promise<void>;
}

/** Starts the client (as `uid`, its gid the same number, when given) and places it in the cgroup before its first connect. */
export async function startCgroupClient(cgroup: TestCgroup, options: { uid?: number } = {}): Promise<CgroupClient & { pid: number }> {
  const ids = options.uid === undefined ? {} : { uid: options.uid, gid: options.uid };
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, ['-e', CLIENT], { stdio: 'pipe', ...ids });
  const lines = createInterface({ input: child.stdout });
  const waiting: { resolve: (line: string) => void; reject: (err: Error) => void }[] = [];
  lines.on('line', (line) => waiting.shift()?.resolve(line));
  child.once('exit', (code, signal) => {
    for (const w of waiting.splice(0)) w.reject(new Error(`client exited (${code ?? signal})`));
  });
  const next = (): Promise<string> => new Promise((resolve, reject) => waiting.push({ resolve, reject }));
  const ready = await next();
  if (ready !== 'ready') throw new Error(`client said ${ready}`);
  cgroup.enter(child.pid as number);
  return {
    pid: child.pid as number,
    async connect(target) {
      const reply = next();
      child.stdin.write(`${JSON.stringify(target)}\n`);
      return JSON.parse(await reply) as ConnectOutcome;
    },
    close: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGKILL');
      await gone;
    },
  };
}

/** Kernel-side conditions settle in microseconds: poll tightly. */
export function waitFor(probe: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  return pollUntil(probe, what, timeoutMs, 2);
}
