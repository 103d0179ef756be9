import { LRUCache } from 'lru-cache';
import type { Clock } from '../clock';
import type { Decision } from '../decision/decision';
import type { DecisionObserver } from '../decision/decision-observer';
import type { DecisionRecord } from '../decisionlog/decision-record';
import { IDENTITY_KEY_PATHS, type CacheDeclaration } from './kernel-eligibility';
import type { KernelAction, L4Tuple } from './map-layout';

export interface HotnessSettings {
  hotHits: number;
  hotWindowMs: number;
  maxTracked: number;
  maxEntryTtlMs: number;
}

/** Where hot verdicts go (the batching kernel writer). */
export interface VerdictSink {
  /** The generation an entry made now must carry. */
  readonly generation: bigint;
  put(tuple: L4Tuple, action: KernelAction, ttlMs: number, generation: bigint): void;
  drop(tuple: L4Tuple): void;
}

/** The bundle decisions are eligible under: its sha256 and its kernel-eligible declaration, if any. */
export interface EligibleBundle {
  sha256: string;
  declaration: CacheDeclaration | null;
}

export type SkipReason = 'NOT_A_POLICY_VERDICT' | 'OTHER_BUNDLE' | 'NOT_ELIGIBLE' | 'NO_ADDRESS' | 'NO_IDENTITY' | 'SVID_EXPIRY';

interface Tracked {
  action: KernelAction;
  /** Identity the decision was made for (key paths spiffe.id/source_principal), bound to this address. */
  identity: string | null;
  hits: number;
  windowStartMs: number;
  /** Wall time until which the kernel holds this verdict; 0 when not mirrored. */
  mirroredUntilMs: number;
}

interface Observation {
  tuple: L4Tuple;
  identity: string | null;
  svidExpiresMs: number | null;
}

/**
 * Counts identical L4-eligible decisions per (source, destination, port). After `hotHits` within
 * `hotWindowMs` the verdict goes to the kernel with an expiry bounded by the declared TTL, the SVID and
 * `maxEntryTtlMs`. A different verdict or a different identity for the same tuple withdraws it at once.
 */
export class HotnessTracker implements DecisionObserver {
  private readonly tracked: LRUCache<string, Tracked>;
  private bundle: EligibleBundle | null = null;

  constructor(
    private readonly settings: HotnessSettings,
    private readonly sink: VerdictSink,
    private readonly clock: Clock,
    private readonly onSkip: (why: SkipReason) => void = () => {},
  ) {
    // Cold entries age out by window; the bound holds whatever the traffic.
    this.tracked = new LRUCache({ max: settings.maxTracked, ttl: settings.hotWindowMs + settings.maxEntryTtlMs });
  }

  /** A new bundle: forget everything counted under the old one (the kernel generation moves separately). */
  setBundle(bundle: EligibleBundle | null): void {
    this.bundle = bundle;
    this.tracked.clear();
  }

  get size(): number {
    return this.tracked.size;
  }

  observe(record: DecisionRecord, decision: Decision): void {
    try {
      this.track(record, decision);
    } catch {
      // An observer never throws into the pipeline; a malformed record simply is not mirrored.
      this.onSkip('NO_ADDRESS');
    }
  }

  private track(record: DecisionRecord, decision: Decision): void {
    const declaration = this.declarationFor(record, decision);
    if (!declaration) return;
    const seen = observationOf(record.input, declaration);
    if (typeof seen === 'string') return this.onSkip(seen);
    const nowMs = this.clock.nowMs();
    const action: KernelAction = decision.allowed ? 'allow' : 'deny';
    const id = `${seen.tuple.srcAddress}|${seen.tuple.dstAddress}|${seen.tuple.dstPort}`;
    const t = this.current(id, action, seen, nowMs);
    t.hits++;
    if (t.hits < this.settings.hotHits) return;
    const ttlMs = this.ttlFor(action, declaration, seen.svidExpiresMs, nowMs);
    if (ttlMs <= 0) return this.onSkip('SVID_EXPIRY');
    // Re-write only when the kernel copy has used half its life: hot allow pairs keep coming through Envoy.
    if (t.mirroredUntilMs - nowMs > ttlMs / 2) return;
    this.sink.put(seen.tuple, action, ttlMs, this.sink.generation);
    t.mirroredUntilMs = nowMs + ttlMs;
  }

  private declarationFor(record: DecisionRecord, decision: Decision): CacheDeclaration | null {
    // Only what the policy said is repeated; an error deny depends on more than the tuple.
    if (decision.reason !== 'ALLOWED' && decision.reason !== 'DENIED_BY_POLICY') {
      this.onSkip('NOT_A_POLICY_VERDICT');
      return null;
    }
    if (!this.bundle || record.bundle?.sha256 !== this.bundle.sha256) {
      this.onSkip('OTHER_BUNDLE');
      return null;
    }
    if (!this.bundle.declaration) this.onSkip('NOT_ELIGIBLE');
    return this.bundle.declaration;
  }

  /** The tuple's state, restarted when the window lapsed, the verdict flipped, or the identity changed. */
  private current(id: string, action: KernelAction, seen: Observation, nowMs: number): Tracked {
    const t = this.tracked.get(id);
    if (t && t.action === action && t.identity === seen.identity && nowMs - t.windowStartMs <= this.settings.hotWindowMs) return t;
    if (t && t.mirroredUntilMs > nowMs && (t.action !== action || t.identity !== seen.identity)) this.sink.drop(seen.tuple);
    const fresh: Tracked = {
      action,
      identity: seen.identity,
      hits: 0,
      windowStartMs: nowMs,
      mirroredUntilMs: t && t.action === action && t.identity === seen.identity ? t.mirroredUntilMs : 0,
    };
    this.tracked.set(id, fresh);
    return fresh;
  }

  private ttlFor(action: KernelAction, d: CacheDeclaration, svidExpiresMs: number | null, nowMs: number): number {
    let ttl = Math.min(action === 'allow' ? d.ttlMs : d.denyTtlMs, this.settings.maxEntryTtlMs);
    if (svidExpiresMs !== null) ttl = Math.min(ttl, svidExpiresMs - nowMs);
    return ttl;
  }
}

/** The tuple and identity binding from the input document, or why the decision cannot be mirrored. */
function observationOf(input: unknown, declaration: CacheDeclaration): Observation | SkipReason {
  const doc = input as
    | {
        attributes?: {
          source?: { address?: { socketAddress?: { address?: unknown } } };
          destination?: { address?: { socketAddress?: { address?: unknown; portValue?: unknown } } };
        };
        source_principal?: unknown;
        spiffe?: { id?: unknown; expires_at?: unknown };
      }
    | undefined;
  const src = doc?.attributes?.source?.address?.socketAddress?.address;
  const dst = doc?.attributes?.destination?.address?.socketAddress;
  if (typeof src !== 'string' || typeof dst?.address !== 'string' || typeof dst.portValue !== 'number') return 'NO_ADDRESS';
  const tuple: L4Tuple = { srcAddress: src, dstAddress: dst.address, dstPort: dst.portValue };

  let identity: string | null = null;
  for (const path of declaration.keyPaths.filter((p) => IDENTITY_KEY_PATHS.has(p))) {
    const value = path === 'spiffe.id' ? doc?.spiffe?.id : doc?.source_principal;
    // The decision depended on who called; without a verified identity it cannot be bound to the address.
    if (typeof value !== 'string' || value === '') return 'NO_IDENTITY';
    identity = identity === null ? value : `${identity}\n${value}`;
  }

  let svidExpiresMs: number | null = null;
  if (doc?.spiffe !== undefined) {
    svidExpiresMs = typeof doc.spiffe.expires_at === 'string' ? Date.parse(doc.spiffe.expires_at) : NaN;
    if (!Number.isFinite(svidExpiresMs)) return 'SVID_EXPIRY';
  }
  return { tuple, identity, svidExpiresMs };
}
