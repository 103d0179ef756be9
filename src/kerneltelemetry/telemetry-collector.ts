import type { Metric, Registry } from 'prom-client';
import type { Series } from './series-book';
import { HIST_SLOTS, slotUpperSeconds, type Stats } from './telemetry-layout';

type Labels = Record<string, string>;
interface Value {
  metricName?: string;
  labels: Labels;
  value: number;
}

/** Slots below this are folded into the first exported bucket (le 2^(slot+1) ns = 2.048 µs): no handshake is faster. */
const FIRST_EXPORTED_SLOT = 10;

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'histogram' | 'summary';
  values: (s: Series, base: Labels) => Value[];
}

const counter =
  (pick: (s: Stats) => number, extra: Labels = {}) =>
  (s: Series, base: Labels): Value[] => [{ labels: { ...base, ...extra }, value: pick(s.stats) }];

const FAMILIES: readonly Family[] = [
  {
    name: 'verdict_kernel_connect_attempts_total',
    help: 'TCP connect() calls, per identity and destination.',
    type: 'counter',
    values: counter((s) => s.attempts),
  },
  {
    name: 'verdict_kernel_connections_established_total',
    help: 'TCP handshakes completed (SYN-ACK received).',
    type: 'counter',
    values: counter((s) => s.established),
  },
  {
    name: 'verdict_kernel_connections_refused_total',
    help: 'Connects refused, by who: fastpath (the kernel fast path, EPERM, no SYN) or peer (the SYN was answered by a RST).',
    type: 'counter',
    values: (s, base) => [
      ...counter((x) => x.refusedFastpath, { by: 'fastpath' })(s, base),
      ...counter((x) => x.refusedPeer, { by: 'peer' })(s, base),
    ],
  },
  {
    name: 'verdict_kernel_connections_reset_total',
    help: 'Established connections ended by a RST from the peer.',
    type: 'counter',
    values: counter((s) => s.resetPeer),
  },
  {
    name: 'verdict_kernel_connections_failed_total',
    help: 'Handshakes that ended without a RST or an ESTABLISHED (SYN timeout, unreachable, aborted).',
    type: 'counter',
    values: counter((s) => s.failed),
  },
  {
    name: 'verdict_kernel_retransmits_total',
    help: 'Retransmitted segments, SYNs included.',
    type: 'counter',
    values: counter((s) => s.retransmits),
  },
  {
    name: 'verdict_kernel_bytes_total',
    help: 'TCP sequence space acknowledged (sent) and received, counted when a connection closes (SYN and FIN count one each).',
    type: 'counter',
    values: (s, base) => [
      ...counter((x) => x.bytesAcked, { direction: 'sent' })(s, base),
      ...counter((x) => x.bytesReceived, { direction: 'received' })(s, base),
    ],
  },
  {
    name: 'verdict_kernel_srtt_seconds',
    help: 'Smoothed RTT of each connection when it closed (sum and count: rate(sum)/rate(count) is the mean).',
    type: 'summary',
    values: (s, base) => [
      { metricName: 'verdict_kernel_srtt_seconds_sum', labels: base, value: s.stats.srttUsSum / 1e6 },
      { metricName: 'verdict_kernel_srtt_seconds_count', labels: base, value: s.stats.srttSamples },
    ],
  },
  {
    name: 'verdict_kernel_handshake_seconds',
    help: 'SYN→ESTABLISHED time; buckets are the kernel’s log2 nanosecond slots.',
    type: 'histogram',
    values: histogram,
  },
];

function histogram(s: Series, base: Labels): Value[] {
  const out: Value[] = [];
  let cumulative = 0;
  for (let slot = 0; slot < HIST_SLOTS - 1; slot++) {
    cumulative += s.stats.hist[slot] ?? 0;
    if (slot >= FIRST_EXPORTED_SLOT)
      out.push({
        metricName: 'verdict_kernel_handshake_seconds_bucket',
        labels: { ...base, le: String(slotUpperSeconds(slot)) },
        value: cumulative,
      });
  }
  cumulative += s.stats.hist[HIST_SLOTS - 1] ?? 0;
  out.push({ metricName: 'verdict_kernel_handshake_seconds_bucket', labels: { ...base, le: '+Inf' }, value: cumulative });
  out.push({ metricName: 'verdict_kernel_handshake_seconds_sum', labels: base, value: s.stats.handshakeNsSum / 1e9 });
  out.push({ metricName: 'verdict_kernel_handshake_seconds_count', labels: base, value: cumulative });
  return out;
}

/**
 * Registers the per-series verdict_kernel_* families. `series()` is called once per family per scrape; the
 * caller makes those calls share one kernel read. Nothing here runs on the Check path.
 */
export function registerKernelCollectors(registry: Registry, series: () => Iterable<Series>): () => void {
  const metrics = FAMILIES.map((f) => ({
    name: f.name,
    help: f.help,
    type: f.type,
    aggregator: 'sum' as const,
    get: async () => {
      const values: Value[] = [];
      for (const s of series()) values.push(...f.values(s, { spiffe_id: s.spiffeId, destination: s.destination }));
      return { name: f.name, help: f.help, type: f.type, aggregator: 'sum' as const, values };
    },
    reset: () => {},
  }));
  for (const m of metrics) registry.registerMetric(m as unknown as Metric);
  return () => {
    for (const m of metrics) registry.removeSingleMetric(m.name);
  };
}
