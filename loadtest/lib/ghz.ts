import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { toolPath } from '../../src/cli/tools';
import { envoyProtoIncludeDirs } from '../../src/server/envoy-protos';

export interface GhzOptions {
  target: string;
  /** Request in protojson (a file path). */
  dataFile: string;
  /** Fixed arrival rate (requests/s); 0 = as fast as possible. */
  rps: number;
  durationS?: number;
  total?: number;
  concurrency: number;
  connections: number;
  /** mTLS: client certificate and key (PEM files); the server's SVID names no host, so its name is not checked. */
  tls?: { certFile: string; keyFile: string };
  /** Pin ghz to this CPU (taskset), leaving the other to the server. */
  cpu?: number;
}

export interface LoadResult {
  count: number;
  rps: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  errors: number;
}

interface GhzReport {
  count: number;
  rps: number;
  latencyDistribution: { percentage: number; latency: number }[] | null;
  statusCodeDistribution: Record<string, number>;
}

/** Runs the pinned ghz against a Check endpoint and returns throughput and latency percentiles. */
export async function runGhz(o: GhzOptions): Promise<LoadResult> {
  const args = [
    ...(o.tls ? ['--skipTLS', '--cert', o.tls.certFile, '--key', o.tls.keyFile] : ['--insecure']),
    '--proto',
    'envoy/service/auth/v3/external_auth.proto',
    '--import-paths',
    envoyProtoIncludeDirs().join(','),
    '--call',
    'envoy.service.auth.v3.Authorization.Check',
    '-D',
    o.dataFile,
    '-c',
    String(o.concurrency),
    '--connections',
    String(o.connections),
    '--rps',
    String(o.rps),
    '-O',
    'json',
    '--skipFirst',
    String(Math.min(200, o.total ?? 200)),
  ];
  if (o.total !== undefined) args.push('-n', String(o.total));
  else args.push('-z', `${o.durationS ?? 10}s`);
  args.push(o.target);
  const [bin, argv] = o.cpu === undefined ? [toolPath('ghz'), args] : ['taskset', ['-c', String(o.cpu), toolPath('ghz'), ...args]];
  const { stdout } = await promisify(execFile)(bin, argv, { maxBuffer: 64 * 1024 * 1024 });
  const r = JSON.parse(stdout) as GhzReport;
  const pct = (p: number): number => (r.latencyDistribution?.find((d) => d.percentage === p)?.latency ?? NaN) / 1e6;
  const ok = r.statusCodeDistribution.OK ?? 0;
  return { count: r.count, rps: r.rps, p50Ms: pct(50), p90Ms: pct(90), p99Ms: pct(99), errors: r.count - ok };
}
