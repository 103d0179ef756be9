import type { Series } from './series-book';
import { HIST_SLOTS, slotUpperSeconds, type Stats } from './telemetry-layout';

/** Slots below this fold into the first exported bucket (le 2^(slot+1) ns = 2.048 µs): no handshake is faster. */
const FIRST_EXPORTED_SLOT = 10;
const BUCKET_BOUNDS = Array.from({ length: HIST_SLOTS - 1 - FIRST_EXPORTED_SLOT }, (_, i) =>
  String(slotUpperSeconds(FIRST_EXPORTED_SLOT + i)),
);

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'histogram' | 'summary';
  lines: (out: string[], labels: string, s: Stats) => void;
}

const counter =
  (name: string, pick: (s: Stats) => number, extra = '') =>
  (out: string[], labels: string, s: Stats): void =>
    void out.push(`${name}{${labels}${extra}} ${pick(s)}`);

const both =
  (...fs: ((out: string[], labels: string, s: Stats) => void)[]) =>
  (out: string[], labels: string, s: Stats): void => {
    for (const f of fs) f(out, labels, s);
  };

const FAMILIES: readonly Family[] = [
  {
    name: 'verdict_kernel_connect_attempts_total',
    help: 'TCP connect() calls, per identity and destination.',
    type: 'counter',
    lines: counter('verdict_kernel_connect_attempts_total', (s) => s.attempts),
  },
  {
    name: 'verdict_kernel_connections_established_total',
    help: 'TCP handshakes completed (SYN-ACK received).',
    type: 'counter',
    lines: counter('verdict_kernel_connections_established_total', (s) => s.established),
  },
  {
    name: 'verdict_kernel_connections_refused_total',
    help: 'Connects refused, by who: fastpath (the kernel fast path, EPERM, no SYN) or peer (the SYN was answered by a RST).',
    type: 'counter',
    lines: both(
      counter('verdict_kernel_connections_refused_total', (s) => s.refusedFastpath, ',by="fastpath"'),
      counter('verdict_kernel_connections_refused_total', (s) => s.refusedPeer, ',by="peer"'),
    ),
  },
  {
    name: 'verdict_kernel_connections_reset_total',
    help: 'Established connections ended by a RST from the peer.',
    type: 'counter',
    lines: counter('verdict_kernel_connections_reset_total', (s) => s.resetPeer),
  },
  {
    name: 'verdict_kernel_connections_failed_total',
    help: 'Handshakes that ended without a RST or an ESTABLISHED (SYN timeout, unreachable, aborted).',
    type: 'counter',
    lines: counter('verdict_kernel_connections_failed_total', (s) => s.failed),
  },
  {
    name: 'verdict_kernel_retransmits_total',
    help: 'Retransmitted segments, SYNs included.',
    type: 'counter',
    lines: counter('verdict_kernel_retransmits_total', (s) => s.retransmits),
  },
  {
    name: 'verdict_kernel_bytes_total',
    help: 'TCP sequence space acknowledged (sent) and received, counted when a connection closes (SYN and FIN count one each).',
    type: 'counter',
    lines: both(
      counter('verdict_kernel_bytes_total', (s) => s.bytesAcked, ',direction="sent"'),
      counter('verdict_kernel_bytes_total', (s) => s.bytesReceived, ',direction="received"'),
    ),
  },
  {
    name: 'verdict_kernel_srtt_seconds',
    help: 'Smoothed RTT of each connection when it closed (sum and count: rate(sum)/rate(count) is the mean).',
    type: 'summary',
    lines: both(
      counter('verdict_kernel_srtt_seconds_sum', (s) => s.srttUsSum / 1e6),
      counter('verdict_kernel_srtt_seconds_count', (s) => s.srttSamples),
    ),
  },
  {
    name: 'verdict_kernel_handshake_seconds',
    help: "SYN→ESTABLISHED time; the buckets are the kernel's log2 nanosecond slots.",
    type: 'histogram',
    lines: histogram,
  },
];

function histogram(out: string[], labels: string, s: Stats): void {
  let cumulative = 0;
  for (let slot = 0; slot < FIRST_EXPORTED_SLOT; slot++) cumulative += s.hist[slot] ?? 0;
  for (let slot = FIRST_EXPORTED_SLOT; slot < HIST_SLOTS - 1; slot++) {
    cumulative += s.hist[slot] ?? 0;
    out.push(`verdict_kernel_handshake_seconds_bucket{${labels},le="${BUCKET_BOUNDS[slot - FIRST_EXPORTED_SLOT]}"} ${cumulative}`);
  }
  cumulative += s.hist[HIST_SLOTS - 1] ?? 0;
  out.push(`verdict_kernel_handshake_seconds_bucket{${labels},le="+Inf"} ${cumulative}`);
  out.push(`verdict_kernel_handshake_seconds_sum{${labels}} ${s.handshakeNsSum / 1e9}`);
  out.push(`verdict_kernel_handshake_seconds_count{${labels}} ${cumulative}`);
}

/**
 * The per-series verdict_kernel_* families in Prometheus text format (0.0.4), rendered here rather than
 * through prom-client: at 10k series × ~40 samples the generic formatter dominated the scrape; each
 * series' label text is built once, when the series is created.
 */
export function renderKernelSeries(series: readonly Series[]): string {
  if (series.length === 0) return '';
  const out: string[] = [];
  for (const f of FAMILIES) {
    out.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of series) f.lines(out, s.labels, s.stats);
  }
  return `${out.join('\n')}\n`;
}

/** Prometheus text label values: backslash, double quote and newline are escaped. */
export function seriesLabels(spiffeId: string, destination: string): string {
  const esc = (v: string): string => v.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
  return `spiffe_id="${esc(spiffeId)}",destination="${esc(destination)}"`;
}
