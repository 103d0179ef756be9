import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { configSchema } from '../../src/config/schema';
import type { KernelTelemetryConfig } from '../../src/config/sections/kernel-telemetry';
import type { Decision } from '../../src/decision/decision';
import type { DecisionLog, DecisionRecord } from '../../src/decisionlog/decision-record';
import { telemetryObjectPath } from '../../src/kerneltelemetry/telemetry-addon';
import { packageRoot } from '../../src/package-root';
import { CGROUP2_ROOT, requireBPF, type TestCgroup } from './bpf-kernel';

/** requireBPF plus the telemetry object: a loud failure with the reason when either is missing. */
export function requireTelemetryBPF(): void {
  requireBPF();
  if (!existsSync(telemetryObjectPath()))
    throw new Error(`kernel telemetry tests cannot run: ${telemetryObjectPath()} missing (npm run build:native)`);
}

/** A parent cgroup (where the programs attach) with named child groups the workloads run in. */
export function createCgroupTree(name: string, children: readonly string[]): { parent: TestCgroup; child: Record<string, TestCgroup> } {
  const cg = (path: string): TestCgroup => ({
    path,
    enter: (pid) => writeFileSync(join(path, 'cgroup.procs'), String(pid)),
    remove: () => {
      for (const pid of readFileSync(join(path, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
        try {
          writeFileSync(join(CGROUP2_ROOT, 'cgroup.procs'), pid);
        } catch {
          // exited meanwhile
        }
      }
      rmdirSync(path);
    },
  });
  const parentPath = join(CGROUP2_ROOT, `verdict-test-${name}-${process.pid}`);
  mkdirSync(parentPath, { recursive: true });
  const child: Record<string, TestCgroup> = {};
  for (const c of children) {
    mkdirSync(join(parentPath, c), { recursive: true });
    child[c] = cg(join(parentPath, c));
  }
  const parent = cg(parentPath);
  const removeParent = parent.remove;
  parent.remove = () => {
    for (const c of Object.values(child)) c.remove();
    removeParent();
  };
  return { parent, child };
}

/** Telemetry attached to `cgroupPath`, required, read on demand (no poll, no read interval), through the real schema; then the overrides. */
export function telemetrySettings(cgroupPath: string, overrides: Partial<KernelTelemetryConfig>): KernelTelemetryConfig {
  const base = configSchema.parse({}).kernelTelemetry;
  const attached = { enabled: true, required: true, cgroupPath, pinPath: null, pollIntervalMs: 0, minReadIntervalMs: 0 };
  return { ...base, ...attached, ...overrides, drift: { ...base.drift, ...(overrides.drift ?? {}) } };
}

/** A decision log that keeps what it is given, for asserting the observation events (the real pipeline is tested in decisionlog/). */
export function recordingDecisionLog(): DecisionLog & { records: DecisionRecord[] } {
  const records: DecisionRecord[] = [];
  return {
    records,
    emit: (record: DecisionRecord, _decision: Decision) => void records.push(record),
    close: async () => {},
  };
}

/** Prometheus text → value by the sample's full name and labels as printed (`name{a="b",c="d"}`). */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

/** Builds test/helpers/connect-sweep.c once per run. */
export function connectSweepBinary(): string {
  const bin = join(mkdtempSync(join(tmpdir(), 'verdict-sweep-')), 'connect-sweep');
  execFileSync('cc', ['-O2', '-o', bin, join(packageRoot(), 'test', 'helpers', 'connect-sweep.c')]);
  return bin;
}

/** Runs connect-sweep inside a cgroup (it joins before its first connect: it waits on stdin). */
export async function runSweep(
  bin: string,
  cgroup: TestCgroup,
  count: number,
  port: number,
  mode: 'distinct' | 'same',
): Promise<{ ok: number; failed: number }> {
  // `read` holds the shell until the test has moved it into the cgroup; exec keeps the pid.
  const child = spawn('sh', ['-c', `read go; exec "$0" "$@"`, bin, String(count), String(port), mode], { stdio: 'pipe' });
  cgroup.enter(child.pid as number);
  child.stdin.end('go\n');
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise<void>((resolve, reject) =>
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`connect-sweep exited ${code}`)))),
  );
  const [ok = NaN, failed = NaN] = out.trim().split(' ').map(Number);
  return { ok, failed };
}

/**
 * A listener whose accept queue is full: listen(backlog 0) holding one unaccepted connection, so the
 * kernel drops the next SYN (ListenOverflows) and the client retransmits it after its initial RTO (1 s).
 * `release()` accepts from then on (each connection: read a line, echo it, close).
 */
export async function startFullQueueListener(): Promise<{ port: number; release(): void; stop(): void }> {
  const script = [
    'import socket, sys',
    's = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)',
    'print(s.getsockname()[1], flush=True)',
    'sys.stdin.readline()',
    'while True:',
    '    c, _ = s.accept(); d = c.recv(64)',
    '    if d: c.sendall(d)',
    '    c.close()',
  ].join('\n');
  const child: ChildProcessWithoutNullStreams = spawn('python3', ['-c', script], { stdio: 'pipe' });
  const line = await new Promise<string>((resolve) => createInterface({ input: child.stdout }).once('line', resolve));
  return { port: Number(line), release: () => child.stdin.write('go\n'), stop: () => child.kill('SIGKILL') };
}

/** TcpExt ListenOverflows of this network namespace (SYNs dropped because an accept queue was full). */
export function listenOverflows(): number {
  const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
  const header = lines.find((l) => l.startsWith('TcpExt:'))?.split(' ') ?? [];
  const values = lines.filter((l) => l.startsWith('TcpExt:'))[1]?.split(' ') ?? [];
  return Number(values[header.indexOf('ListenOverflows')]);
}
