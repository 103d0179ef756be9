import { LRUCache } from 'lru-cache';
import type { Clock } from '../clock';
import type { PolicyResult } from '../policy/policy-result';
import type { Metrics } from '../telemetry/metrics';

export interface DecisionCacheOptions {
  maxEntries: number;
  maxBytes: number;
  clock: Clock;
  metrics?: Metrics;
}

export type CacheOutcome = 'hit' | 'miss' | 'coalesced' | 'bypass';

interface Entry {
  readonly result: PolicyResult;
  readonly expiresAtMs: number;
}

export interface CacheStats {
  hits: number;
  misses: number;
  coalesced: number;
  bypassed: number;
  evaluations: number;
  evictions: number;
  entries: number;
  bytes: number;
}

/**
 * Decision results by key (see cache-key.ts), bounded in entries and bytes. Entries carry their own expiry
 * (the earliest of the bundle's TTL and the SVID's expiry) checked against the injected clock; a bundle swap
 * or trust-bundle change invalidates everything (and the bundle sha256 is in every key besides).
 * Concurrent identical misses evaluate once (single-flight).
 */
export class DecisionCache {
  private readonly lru: LRUCache<string, Entry>;
  private readonly inflight = new Map<string, Promise<PolicyResult>>();
  /** Bumped by invalidate(): an evaluation that began before it must not store its result. */
  private epoch = 0;
  private readonly counts = { hits: 0, misses: 0, coalesced: 0, bypassed: 0, evaluations: 0, evictions: 0 };
  private readonly m: {
    hit?: { inc(): void };
    miss?: { inc(): void };
    coalesced?: { inc(): void };
    bypass?: { inc(): void };
  } = {};

  constructor(private readonly options: DecisionCacheOptions) {
    const metrics = options.metrics;
    // No `max` here: lru-cache preallocates its index arrays for `max` entries up front (~36 B an entry:
    // 3.6 MiB for the default 100,000 while the cache is empty, 360 MiB for the schema's 10 million).
    // Without it they grow with use; the entry bound is kept by store().
    this.lru = new LRUCache<string, Entry>({
      maxSize: options.maxBytes,
      sizeCalculation: (entry, key) => entryBytes(key, entry),
      dispose: (_v, _k, reason) => {
        if (reason === 'evict') {
          this.counts.evictions++;
          metrics?.cacheEvictions.inc({ why: 'size' });
        }
      },
    });
    if (metrics) {
      this.m.hit = metrics.cacheRequestCounter('hit');
      this.m.miss = metrics.cacheRequestCounter('miss');
      this.m.coalesced = metrics.cacheRequestCounter('coalesced');
      this.m.bypass = metrics.cacheRequestCounter('bypass');
      metrics.cacheSize = () => ({ entries: this.lru.size, bytes: this.lru.calculatedSize });
    }
  }

  /** A live (unexpired) result, or undefined. Counts a hit; a miss is counted by evaluate(). */
  get(key: string): PolicyResult | undefined {
    const entry = this.lru.get(key);
    if (entry === undefined) return undefined;
    if (this.options.clock.nowMs() >= entry.expiresAtMs) {
      this.lru.delete(key);
      this.counts.evictions++;
      this.options.metrics?.cacheEvictions.inc({ why: 'expired' });
      return undefined;
    }
    this.counts.hits++;
    this.m.hit?.inc();
    return entry.result;
  }

  /**
   * Evaluates once per key across concurrent callers; stores the result until `expiresAtMs(result)` (null:
   * do not store). Errors are not cached: every waiting caller sees the error and denies.
   */
  async evaluate(
    key: string,
    evaluate: () => PolicyResult | Promise<PolicyResult>,
    expiresAtMs: (result: PolicyResult) => number | null,
  ): Promise<{ result: PolicyResult; outcome: 'miss' | 'coalesced' }> {
    const pending = this.inflight.get(key);
    if (pending) {
      this.counts.coalesced++;
      this.m.coalesced?.inc();
      return { result: await pending, outcome: 'coalesced' };
    }
    this.counts.misses++;
    this.m.miss?.inc();
    const epoch = this.epoch;
    const run = (async () => {
      this.counts.evaluations++;
      const result = await evaluate();
      const until = expiresAtMs(result);
      if (until !== null && epoch === this.epoch && until > this.options.clock.nowMs()) this.store(key, { result, expiresAtMs: until });
      return result;
    })();
    this.inflight.set(key, run);
    try {
      return { result: await run, outcome: 'miss' };
    } finally {
      this.inflight.delete(key);
    }
  }

  /** Sets one entry and evicts the least recently used one when that passed `maxEntries` (one set adds one). */
  private store(key: string, entry: Entry): void {
    this.lru.set(key, entry);
    if (this.lru.size > this.options.maxEntries) this.lru.pop();
  }

  bypassed(): void {
    this.counts.bypassed++;
    this.m.bypass?.inc();
  }

  /** A bundle swap or trust-bundle change: nothing decided before it may answer after it. */
  invalidate(): void {
    this.epoch++;
    const n = this.lru.size;
    this.lru.clear();
    this.inflight.clear();
    if (n > 0) {
      this.counts.evictions += n;
      this.options.metrics?.cacheEvictions.inc({ why: 'invalidated' }, n);
    }
  }

  stats(): CacheStats {
    return { ...this.counts, entries: this.lru.size, bytes: this.lru.calculatedSize };
  }
}

/** Estimated bytes: key (UTF-16) plus the result's strings and a fixed overhead per entry. */
function entryBytes(key: string, entry: Entry): number {
  const r = entry.result;
  let n = 160 + key.length * 2 + (r.body?.length ?? 0) * 2;
  for (const list of [r.headers, r.responseHeadersToAdd, r.queryParametersToSet])
    for (const [k, v] of list) n += 48 + (k.length + v.length) * 2;
  for (const list of [r.requestHeadersToRemove, r.queryParametersToRemove, r.reasons]) for (const s of list) n += 32 + s.length * 2;
  if (r.dynamicMetadata) n += 256;
  return n;
}
