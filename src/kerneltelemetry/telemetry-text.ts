import type { Series } from './series-book';
import { HIST_SLOTS, slotUpperSeconds, type Stats } from './telemetry-layout';

/** Slots below this fold into the first exported bucket (le 2^(slot+1) ns = 2.048 µs): no handshake is faster. */
const FIRST_EXPORTED_SLOT = 10;
const BUCKET_BOUNDS = Array.from({ length: HIST_SLOTS - 1 - FIRST_EXPORTED_SLOT }, (_, i) =>
  String(slotUpperSeconds(FIRST_EXPORTED_SLOT + i)),
);

/** Writes one family's samples of one series; `labels` is the series' label text as UTF-8 bytes. */
type Lines = (w: TextWriter, labels: Buffer, s: Stats) => void;

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'histogram' | 'summary';
  lines: Lines;
}

/**
 * The scrape's text, appended into one growing Buffer: the constant parts of every line (metric name, label
 * bytes, bucket bound) are copied from Buffers built once, so a scrape makes one string at the end instead of
 * ~40 per series (at 10k series those strings and their garbage collection were most of the scrape).
 */
class TextWriter {
  private buf: Buffer;
  private n = 0;

  constructor(capacity: number) {
    this.buf = Buffer.allocUnsafe(Math.max(capacity, 1024));
  }

  /** One sample line: head labels tail value. */
  sample(head: Buffer, labels: Buffer, tail: Buffer, value: number): void {
    this.bytes(head);
    this.bytes(labels);
    this.bytes(tail);
    this.ascii(`${value}\n`);
  }

  bytes(b: Buffer): void {
    this.reserve(b.length);
    this.n += b.copy(this.buf, this.n);
  }

  /** Latin-1 only (the numbers). */
  ascii(text: string): void {
    this.reserve(text.length);
    this.n += this.buf.write(text, this.n, 'latin1');
  }

  text(): string {
    return this.buf.toString('utf8', 0, this.n);
  }

  private reserve(more: number): void {
    if (this.n + more <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.n + more));
    this.buf.copy(next, 0, 0, this.n);
    this.buf = next;
  }
}

const counter = (name: string, pick: (s: Stats) => number, extra = ''): Lines => {
  const head = Buffer.from(`${name}{`);
  const tail = Buffer.from(`${extra}} `);
  return (w, labels, s) => w.sample(head, labels, tail, pick(s));
};

const both =
  (...fs: Lines[]): Lines =>
  (w, labels, s) => {
    for (const f of fs) f(w, labels, s);
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

const BUCKET_HEAD = Buffer.from('verdict_kernel_handshake_seconds_bucket{');
const BUCKET_TAILS = [...BUCKET_BOUNDS, '+Inf'].map((le) => Buffer.from(`,le="${le}"} `));
const SUM_HEAD = Buffer.from('verdict_kernel_handshake_seconds_sum{');
const COUNT_HEAD = Buffer.from('verdict_kernel_handshake_seconds_count{');
const CLOSE = Buffer.from('} ');

function histogram(w: TextWriter, labels: Buffer, s: Stats): void {
  let cumulative = 0;
  for (let slot = 0; slot < FIRST_EXPORTED_SLOT; slot++) cumulative += s.hist[slot] ?? 0;
  for (let slot = FIRST_EXPORTED_SLOT; slot < HIST_SLOTS; slot++) {
    cumulative += s.hist[slot] ?? 0;
    w.sample(BUCKET_HEAD, labels, BUCKET_TAILS[slot - FIRST_EXPORTED_SLOT]!, cumulative);
  }
  w.sample(SUM_HEAD, labels, CLOSE, s.handshakeNsSum / 1e9);
  w.sample(COUNT_HEAD, labels, CLOSE, cumulative);
}

const HEADERS = FAMILIES.map((f) => Buffer.from(`# HELP ${f.name} ${f.help}\n# TYPE ${f.name} ${f.type}\n`));

/**
 * The per-series verdict_kernel_* families in Prometheus text format (0.0.4), rendered here rather than
 * through prom-client: at 10k series × ~40 samples the generic formatter dominated the scrape.
 */
export function renderKernelSeries(series: readonly Series[]): string {
  if (series.length === 0) return '';
  // ~5 KB per series with typical labels: sized once, grown by doubling if labels are longer.
  const w = new TextWriter(series.length * 5120);
  FAMILIES.forEach((f, i) => {
    w.bytes(HEADERS[i]!);
    for (const s of series) f.lines(w, s.labels, s.stats);
  });
  return w.text();
}

/** A series' label text as UTF-8 bytes (built once per series); backslash, double quote and newline are escaped. */
export function seriesLabels(spiffeId: string, destination: string): Buffer {
  const esc = (v: string): string => v.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
  return Buffer.from(`spiffe_id="${esc(spiffeId)}",destination="${esc(destination)}"`);
}
