import { HIST_SLOTS, STAT_FIELDS, emptyStats, type Aggregate, type Stats } from './telemetry-layout';
import { seriesLabels } from './telemetry-text';

/** The destination label every destination past an identity's top-N is folded into. */
export const OTHER_DESTINATION = 'other';

export interface Series {
  spiffeId: string;
  destination: string;
  /** Prometheus label text (UTF-8), built once. */
  labels: Buffer;
  stats: Stats;
}

/** What changed for one kernel aggregate since the previous read. */
export interface AggregateDelta {
  spiffeId: string;
  dstAddress: string;
  dstPort: number;
  delta: Stats;
}

/**
 * Turns successive kernel reads into monotonic Prometheus series. The kernel map is an LRU (entries can be
 * evicted and re-created), so each read is diffed against the previous one per kernel key and the deltas
 * are added to cumulative series per (spiffe_id, destination). A destination keeps its series once given
 * one (counters must not move between series); an identity gets at most `topDestinations` of them, handed
 * to the busiest new destinations of each read, and everything else lands in destination="other".
 * Memory: the previous read (≤ the kernel map bound) plus at most min(maxSeries, identities × (topDestinations
 * + 1)) series; once maxSeries is reached, new destinations fold into their identity's "other" (an identity seen
 * only after that still gets its one "other" series, so identities beyond the cap add one series each).
 */
export class SeriesBook {
  private previous = new Map<string, Stats>();
  private readonly series = new Map<string, Map<string, Series>>();
  private count = 0;

  constructor(
    private readonly topDestinations: number,
    private readonly maxSeries = Infinity,
  ) {}

  /** Folds one read in; `complete` false (the read hit its cap) keeps unseen keys' previous values. */
  apply(aggregates: readonly Aggregate[], complete: boolean, identityOf: (cgroupId: bigint) => string): AggregateDelta[] {
    const deltas: AggregateDelta[] = [];
    const next = complete ? new Map<string, Stats>() : this.previous;
    for (const a of aggregates) {
      const k = `${a.cgroupId}|${a.dstAddress}|${a.dstPort}`;
      const delta = diff(a.stats, this.previous.get(k));
      next.set(k, a.stats);
      if (delta) deltas.push({ spiffeId: identityOf(a.cgroupId), dstAddress: a.dstAddress, dstPort: a.dstPort, delta });
    }
    this.previous = next;
    // The busiest new destinations claim free slots first.
    deltas.sort((x, y) => y.delta.attempts - x.delta.attempts);
    for (const d of deltas) add(this.seriesFor(d.spiffeId, destinationLabel(d.dstAddress, d.dstPort)), d.delta);
    return deltas;
  }

  all(): Series[] {
    const out: Series[] = [];
    for (const byDest of this.series.values()) for (const s of byDest.values()) out.push(s);
    return out;
  }

  get size(): number {
    return this.count;
  }

  private seriesFor(spiffeId: string, destination: string): Stats {
    let byDest = this.series.get(spiffeId);
    if (!byDest) this.series.set(spiffeId, (byDest = new Map()));
    const own = byDest.get(destination);
    if (own) return own.stats;
    const named = byDest.size - (byDest.has(OTHER_DESTINATION) ? 1 : 0);
    // Room is kept for the identity's own "other" series, so the total never passes maxSeries because of it.
    const room = this.count + (byDest.has(OTHER_DESTINATION) ? 0 : 1) < this.maxSeries;
    const label = named < this.topDestinations && room ? destination : OTHER_DESTINATION;
    let s = byDest.get(label);
    if (!s) {
      byDest.set(label, (s = { spiffeId, destination: label, labels: seriesLabels(spiffeId, label), stats: emptyStats() }));
      this.count++;
    }
    return s.stats;
  }
}

export function destinationLabel(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** current − previous; the whole of current when the kernel entry was re-created (a counter went down). Null: nothing new. */
function diff(current: Stats, previous: Stats | undefined): Stats | null {
  if (!previous) return nonZero(current);
  // Most aggregates are idle between two reads: find that out before allocating a delta.
  let changed = false;
  for (const f of STAT_FIELDS) {
    if (current[f] < previous[f]) return current;
    changed ||= current[f] !== previous[f];
  }
  for (let i = 0; i < HIST_SLOTS; i++) {
    const c = current.hist[i] ?? 0;
    const p = previous.hist[i] ?? 0;
    if (c < p) return current;
    changed ||= c !== p;
  }
  if (!changed) return null;
  const d = emptyStats();
  for (const f of STAT_FIELDS) d[f] = current[f] - previous[f];
  for (let i = 0; i < HIST_SLOTS; i++) d.hist[i] = (current.hist[i] ?? 0) - (previous.hist[i] ?? 0);
  return d;
}

function nonZero(s: Stats): Stats | null {
  return STAT_FIELDS.some((f) => s[f] !== 0) ? s : null;
}

function add(into: Stats, d: Stats): void {
  for (const f of STAT_FIELDS) into[f] += d[f];
  for (let i = 0; i < HIST_SLOTS; i++) into.hist[i] = (into.hist[i] ?? 0) + (d.hist[i] ?? 0);
}
