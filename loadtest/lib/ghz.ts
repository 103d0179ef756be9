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
  /** Calls answered with a status other than OK (or not answered), of `count`. */
  errors: number;
  /** `errors` by kind: ghz's message with the socket addresses taken out (one entry per connection otherwise). */
  errorsByKind: Record<string, number>;
  /** Calls sent before the tally started (`--skipFirst`): the server answered them, `count` leaves them out. */
  skipped: number;
}

interface GhzReport {
  count: number;
  rps: number;
  latencyDistribution: { percentage: number; latency: number }[] | null;
  statusCodeDistribution: Record<string, number>;
  errorDistribution?: Record<string, number> | null;
}

/**
 * ghz's error texts by kind: "rpc error: code = Unavailable desc = error reading from server: read tcp
 * 127.0.0.1:44900->127.0.0.1:44675: use of closed network connection" names the client's port, so each connection
 * would be its own entry.
 */
export function errorsByKind(distribution: Record<string, number> | null | undefined): Record<string, number> {
  const kinds: Record<string, number> = {};
  for (const [message, n] of Object.entries(distribution ?? {})) {
    const kind = message
      .replace(/^rpc error: code = (\w+) desc = /, '$1: ')
      .replace(/\[?[0-9a-f.:]+\]?:\d+->\[?[0-9a-f.:]+\]?:\d+/gi, 'ADDR->ADDR')
      .replace(/\b\d{1,3}(\.\d{1,3}){3}:\d+\b/g, 'ADDR');
    kinds[kind] = (kinds[kind] ?? 0) + n;
  }
  return kinds;
}

/** Runs the pinned ghz against a Check endpoint and returns throughput and latency percentiles. */
export async function runGhz(o: GhzOptions): Promise<LoadResult> {
  const skipped = Math.min(200, o.total ?? 200);
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
    String(skipped),
  ];
  if (o.total !== undefined) args.push('-n', String(o.total));
  // ghz's default at the end of a -z run ("close") shuts its connections with calls still in flight and counts
  // each as an error ("Unavailable: ... use of closed network connection", up to the concurrency, plaintext
  // or not); "wait" lets them finish, so an error left in the report is one the server caused.
  else args.push('-z', `${o.durationS ?? 10}s`, '--duration-stop', 'wait');
  args.push(o.target);
  const [bin, argv] = o.cpu === undefined ? [toolPath('ghz'), args] : ['taskset', ['-c', String(o.cpu), toolPath('ghz'), ...args]];
  const { stdout } = await promisify(execFile)(bin, argv, { maxBuffer: 64 * 1024 * 1024 });
  const r = JSON.parse(stdout) as GhzReport;
  const pct = (p: number): number => (r.latencyDistribution?.find((d) => d.percentage === p)?.latency ?? NaN) / 1e6;
  const ok = r.statusCodeDistribution.OK ?? 0;
  return {
    count: r.count,
    rps: r.rps,
    p50Ms: pct(50),
    p90Ms: pct(90),
    p99Ms: pct(99),
    errors: r.count - ok,
    errorsByKind: errorsByKind(r.errorDistribution),
    skipped,
  };
}
