/**
 * Byte layout of `struct kt_key` and `struct kt_stats` (bpf/kernel-telemetry.h), little-endian hosts only.
 * test/unit/kerneltelemetry/telemetry-layout.test.ts checks these numbers against both C compilers.
 */
export const KT_KEY_LAYOUT = Object.freeze({ size: 32, cgroupId: 0, dst: 8, dstPort: 24, family: 26 });

/** The u64 counters of kt_stats, in struct order (each at index × 8), then the histogram. */
export const STAT_FIELDS = Object.freeze([
  'attempts',
  'refusedFastpath',
  'established',
  'refusedPeer',
  'resetPeer',
  'failed',
  'retransmits',
  'bytesAcked',
  'bytesReceived',
  'srttUsSum',
  'srttSamples',
  'handshakeNsSum',
] as const);
export type StatField = (typeof STAT_FIELDS)[number];

/** Log2 nanosecond slots: slot i counts handshakes of [2^i, 2^(i+1)) ns; the last one is open-ended. */
export const HIST_SLOTS = 36;
export const KT_STATS_LAYOUT = Object.freeze({ size: 8 * (STAT_FIELDS.length + HIST_SLOTS), hist: 8 * STAT_FIELDS.length });

/** Program health counters, in the order of KT_CTR_* in the header. */
export const HEALTH_NAMES = Object.freeze(['noStorage', 'statsFull', 'displaced'] as const);

export type Stats = Record<StatField, number> & { hist: number[] };

export interface AggregateKey {
  cgroupId: bigint;
  /** Canonical text: dotted quad, or eight hex groups for IPv6. */
  dstAddress: string;
  dstPort: number;
}

export interface Aggregate extends AggregateKey {
  stats: Stats;
}

export function decodeAggregateKey(buf: Buffer, offset: number): AggregateKey {
  const family = buf.readUInt8(offset + KT_KEY_LAYOUT.family);
  return {
    cgroupId: buf.readBigUInt64LE(offset + KT_KEY_LAYOUT.cgroupId),
    dstAddress: readAddress(buf, offset + KT_KEY_LAYOUT.dst, family),
    dstPort: buf.readUInt16LE(offset + KT_KEY_LAYOUT.dstPort),
  };
}

/** u64 fields of kt_stats per aggregate (counters, then histogram slots). */
export const STATS_WORDS = STAT_FIELDS.length + HIST_SLOTS;

/** Decodes one kt_stats from raw struct bytes (u64 little-endian). */
export function decodeStats(buf: Buffer, offset: number): Stats {
  const words = new Float64Array(STATS_WORDS);
  for (let i = 0; i < STATS_WORDS; i++) words[i] = Number(buf.readBigUInt64LE(offset + 8 * i));
  return statsFromWords(words, 0);
}

/** One kt_stats from the addon's doubles (counters are u64 in the kernel; exact as doubles up to 2^53). */
export function statsFromWords(words: Float64Array, offset: number): Stats {
  const hist = new Array<number>(HIST_SLOTS);
  for (let i = 0; i < HIST_SLOTS; i++) hist[i] = words[offset + STAT_FIELDS.length + i] as number;
  const out = { hist } as Stats;
  for (let i = 0; i < STAT_FIELDS.length; i++) out[STAT_FIELDS[i] as StatField] = words[offset + i] as number;
  return out;
}

export function emptyStats(): Stats {
  const out = { hist: new Array<number>(HIST_SLOTS).fill(0) } as Stats;
  for (const f of STAT_FIELDS) out[f] = 0;
  return out;
}

/** Upper bound of histogram slot i in seconds (2^(i+1) ns); the last slot has none (+Inf). */
export function slotUpperSeconds(slot: number): number {
  return slot >= HIST_SLOTS - 1 ? Infinity : 2 ** (slot + 1) / 1e9;
}

/** The canonical text form kernel addresses decode to, for an address as Envoy reports it. */
export function canonicalAddress(address: string): string | null {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
  if (v4) return v4.slice(1).every((o) => Number(o) <= 255) ? v4.slice(1).map(Number).join('.') : null;
  const groups = expandIPv6(address);
  return groups ? groups.map((g) => g.toString(16)).join(':') : null;
}

function readAddress(buf: Buffer, offset: number, family: number): string {
  if (family === 2) return [0, 1, 2, 3].map((i) => buf.readUInt8(offset + i)).join('.');
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(offset + 2 * i).toString(16));
  return groups.join(':');
}

function expandIPv6(address: string): number[] | null {
  const text = address.split('%')[0] ?? '';
  if (!/^[0-9a-fA-F:]+$/.test(text) || text.split('::').length > 2) return null;
  const [head = '', tail] = text.split('::');
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const h = parse(head);
  const t = tail === undefined ? [] : parse(tail);
  const groups = tail === undefined ? h : [...h, ...new Array<number>(Math.max(0, 8 - h.length - t.length)).fill(0), ...t];
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : null;
}
