import { VerdictError } from '../errors';

export interface Talker {
  spiffeId: string;
  destination: string;
  attempts: number;
  established: number;
  refusedFastpath: number;
  refusedPeer: number;
  resets: number;
  failed: number;
  retransmits: number;
  bytesSent: number;
  bytesReceived: number;
}

export interface TelemetryReport {
  /** Busiest (identity, destination) series first, by connect attempts. */
  talkers: Talker[];
  /** Per identity, most first. */
  unexplained: { spiffeId: string; connections: number }[];
  /** The Delegated Identity binding, when configured: cgroups by state, ended agent streams by code. */
  delegatedIdentity: { cgroups: Record<string, number>; streamErrors: Record<string, number> } | null;
}

const MAX_METRICS_BYTES = 32 * 1024 * 1024;

/** GETs a running verdict's /metrics, bounded in time and size (it is another process's output). */
export async function fetchMetricsText(url: string, timeoutMs = 5000): Promise<string> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    throw new VerdictError('ERR_KERNEL_TELEMETRY_UNAVAILABLE', `cannot read ${url}: ${(err as Error).message}`);
  }
  if (!res.ok || !res.body) throw new VerdictError('ERR_KERNEL_TELEMETRY_UNAVAILABLE', `${url} answered ${res.status}`);
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    bytes += chunk.byteLength;
    if (bytes > MAX_METRICS_BYTES)
      throw new VerdictError('ERR_KERNEL_TELEMETRY_UNAVAILABLE', `${url} is larger than ${MAX_METRICS_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

type Field = Exclude<keyof Talker, 'spiffeId' | 'destination'>;

/** Which Talker field a verdict_kernel_* sample feeds (by metric name and its extra label). */
const FIELDS: Record<string, Field> = {
  verdict_kernel_connect_attempts_total: 'attempts',
  verdict_kernel_connections_established_total: 'established',
  'verdict_kernel_connections_refused_total|fastpath': 'refusedFastpath',
  'verdict_kernel_connections_refused_total|peer': 'refusedPeer',
  verdict_kernel_connections_reset_total: 'resets',
  verdict_kernel_connections_failed_total: 'failed',
  verdict_kernel_retransmits_total: 'retransmits',
  'verdict_kernel_bytes_total|sent': 'bytesSent',
  'verdict_kernel_bytes_total|received': 'bytesReceived',
};

/** Reads the verdict_kernel_* samples out of Prometheus text (lines verdict itself wrote). */
export function telemetryReport(metricsText: string): TelemetryReport {
  const talkers = new Map<string, Talker>();
  const unexplained: TelemetryReport['unexplained'] = [];
  let delegated: TelemetryReport['delegatedIdentity'] = null;
  for (const line of metricsText.split('\n')) {
    if (!line.startsWith('verdict_kernel_')) continue;
    const m = /^(\w+)\{(.*)\} (\S+)$/.exec(line);
    if (!m?.[1] || m[2] === undefined || m[3] === undefined) continue;
    const labels = parseLabels(m[2]);
    const value = Number(m[3]);
    if (m[1] === 'verdict_kernel_unexplained_connections_total' && labels.spiffe_id !== undefined) {
      unexplained.push({ spiffeId: labels.spiffe_id, connections: value });
      continue;
    }
    if (m[1] === 'verdict_kernel_identity_cgroups' && labels.state !== undefined) {
      (delegated ??= { cgroups: {}, streamErrors: {} }).cgroups[labels.state] = value;
      continue;
    }
    if (m[1] === 'verdict_kernel_identity_stream_errors_total' && labels.code !== undefined) {
      (delegated ??= { cgroups: {}, streamErrors: {} }).streamErrors[labels.code] = value;
      continue;
    }
    const field = FIELDS[m[1]] ?? FIELDS[`${m[1]}|${labels.by ?? labels.direction ?? ''}`];
    if (!field || labels.spiffe_id === undefined || labels.destination === undefined) continue;
    const key = `${labels.spiffe_id}\n${labels.destination}`;
    let t = talkers.get(key);
    if (!t) talkers.set(key, (t = emptyTalker(labels.spiffe_id, labels.destination)));
    t[field] = value;
  }
  return {
    talkers: [...talkers.values()].sort((a, b) => b.attempts - a.attempts || b.established - a.established),
    unexplained: unexplained.sort((a, b) => b.connections - a.connections),
    delegatedIdentity: delegated,
  };
}

export function formatReport(report: TelemetryReport, top: number): string {
  const lines = ['top talkers (connect attempts per identity and destination):'];
  const shown = report.talkers.slice(0, top);
  if (shown.length === 0) lines.push('  (none)');
  for (const t of shown)
    lines.push(
      `  ${t.spiffeId} -> ${t.destination}  attempts=${t.attempts} established=${t.established} refused(fastpath)=${t.refusedFastpath} ` +
        `refused(peer)=${t.refusedPeer} resets=${t.resets} failed=${t.failed} retransmits=${t.retransmits} bytes(sent/received)=${t.bytesSent}/${t.bytesReceived}`,
    );
  lines.push('unexplained connections (established with no allow decision from verdict within the window):');
  const drift = report.unexplained.filter((u) => u.connections > 0);
  if (drift.length === 0) lines.push('  (none)');
  for (const u of drift) lines.push(`  ${u.spiffeId}  ${u.connections}`);
  const d = report.delegatedIdentity;
  if (d !== null) {
    const pairs = (r: Record<string, number>): string =>
      Object.entries(r)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ') || '(none)';
    lines.push(`delegated identity (SPIRE agent): cgroups ${pairs(d.cgroups)}; ended streams ${pairs(d.streamErrors)}`);
  }
  return `${lines.join('\n')}\n`;
}

function emptyTalker(spiffeId: string, destination: string): Talker {
  return {
    spiffeId,
    destination,
    attempts: 0,
    established: 0,
    refusedFastpath: 0,
    refusedPeer: 0,
    resets: 0,
    failed: 0,
    retransmits: 0,
    bytesSent: 0,
    bytesReceived: 0,
  };
}

/** `a="x",b="y\"z"` → {a: 'x', b: 'y"z'} (Prometheus text escaping: \\, \", \n). */
function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /(\w+)="((?:[^"\\]|\\.)*)"/g;
  for (let m = re.exec(text); m; m = re.exec(text))
    if (m[1] && m[2] !== undefined) out[m[1]] = m[2].replace(/\\(["\\n])/g, (_s, c: string) => (c === 'n' ? '\n' : c));
  return out;
}
