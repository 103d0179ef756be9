import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { percentiles } from './stats';

export interface H2loadOptions {
  url: string;
  /** File holding one framed gRPC request (5-byte prefix + message). */
  dataFile: string;
  /** Run this long (-D) … */
  durationS?: number;
  /** … or send exactly this many requests (-n). */
  requests?: number;
  clients: number;
  /** Concurrent streams per client (-m). */
  streams: number;
  /** Fixed rate per client (--rps); omitted = as fast as possible. */
  rpsPerClient?: number;
  /** CPU the client is pinned to (taskset), so the server keeps its own core. */
  cpu: number;
}

export interface H2loadResult {
  done: number;
  succeeded: number;
  failed: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  /** Every request: when it started (ms since the epoch) and how long it took (ms), from --log-file. */
  requestLog: { startMs: number; ms: number }[];
}

/** Locates h2load (Debian nghttp2-client, installed by scripts/setup-tools.sh h2load); throws saying so if absent. */
export async function h2loadPath(): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)('sh', ['-c', 'command -v h2load']);
    return stdout.trim();
  } catch {
    throw new Error('h2load not found: run scripts/setup-tools.sh h2load (Debian nghttp2-client)');
  }
}

/** Runs h2load against a gRPC method and reads its per-request log for latency percentiles. */
export async function runH2load(o: H2loadOptions): Promise<H2loadResult> {
  const bin = await h2loadPath();
  const dir = mkdtempSync(join(tmpdir(), 'verdict-h2load-'));
  const log = join(dir, 'requests.log');
  try {
    const args = [
      '-c',
      String(o.cpu),
      bin,
      ...(o.requests !== undefined ? ['-n', String(o.requests)] : ['-D', String(o.durationS ?? 10)]),
      '-c',
      String(o.clients),
      '-m',
      String(o.streams),
      '-d',
      o.dataFile,
      '-H',
      'content-type: application/grpc',
      '-H',
      'te: trailers',
      '--log-file',
      log,
      ...(o.rpsPerClient ? ['--rps', String(o.rpsPerClient)] : []),
      o.url,
    ];
    const { stdout } = await promisify(execFile)('taskset', args, { maxBuffer: 16 * 1024 * 1024 });
    const m = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed/.exec(stdout);
    if (!m) throw new Error(`unexpected h2load output:\n${stdout}`);
    const rps = Number(/finished in [^,]+, ([\d.]+) req\/s/.exec(stdout)?.[1] ?? NaN);
    // --log-file lines: start time (µs), HTTP status, elapsed time (µs).
    const requestLog = readFileSync(log, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [start, , elapsed] = l.split('\t');
        return { startMs: Number(start) / 1000, ms: Number(elapsed) / 1000 };
      });
    const [p50Ms, p99Ms, p999Ms] = percentiles(
      requestLog.map((r) => r.ms),
      [50, 99, 99.9],
    );
    const counts = { done: Number(m[3]), succeeded: Number(m[4]), failed: Number(m[5]) };
    return { ...counts, rps, p50Ms: p50Ms!, p99Ms: p99Ms!, p999Ms: p999Ms!, requestLog };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
