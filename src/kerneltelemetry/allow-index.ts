import { LRUCache } from 'lru-cache';
import type { Clock } from '../clock';
import type { Decision } from '../decision/decision';
import type { DecisionObserver } from '../decision/decision-observer';
import type { DecisionRecord } from '../decisionlog/decision-record';
import type { CgroupIdentities } from './cgroup-identities';
import { canonicalAddress } from './telemetry-layout';

interface InputView {
  attributes?: {
    source?: { address?: { socketAddress?: { address?: unknown } } };
    destination?: { address?: { socketAddress?: { address?: unknown; portValue?: unknown } } };
  };
  source_principal?: unknown;
  spiffe?: { id?: unknown };
}

/**
 * Remembers, per (identity, destination address, port), when verdict last allowed it; and teaches the
 * identity table which verified SVID speaks from which source address. A bounded LRU; never throws.
 */
export class AllowIndex implements DecisionObserver {
  private readonly lastAllowMs: LRUCache<string, number>;
  private readonly canonicalCache = new Map<string, string | null>();

  constructor(
    maxTracked: number,
    private readonly clock: Clock,
    private readonly identities: CgroupIdentities,
  ) {
    this.lastAllowMs = new LRUCache({ max: maxTracked });
  }

  get size(): number {
    return this.lastAllowMs.size;
  }

  observe(record: DecisionRecord, decision: Decision): void {
    try {
      this.track(record.input as InputView | undefined, decision.allowed);
    } catch {
      // An observer never throws into the pipeline; a malformed input is simply not indexed.
    }
  }

  /** When verdict last allowed `spiffeId` to reach the destination; null when never (or forgotten). */
  lastAllowed(spiffeId: string, dstAddress: string, dstPort: number): number | null {
    return this.lastAllowMs.get(key(spiffeId, dstAddress, dstPort)) ?? null;
  }

  /** canonicalAddress, memoised: a mesh has few destination addresses and this runs once per allowed Check. */
  private canonical(address: string): string | null {
    let c = this.canonicalCache.get(address);
    if (c === undefined) {
      if (this.canonicalCache.size >= 4096) this.canonicalCache.clear();
      this.canonicalCache.set(address, (c = canonicalAddress(address)));
    }
    return c;
  }

  private track(input: InputView | undefined, allowed: boolean): void {
    const verified = typeof input?.spiffe?.id === 'string' ? input.spiffe.id : null;
    const src = input?.attributes?.source?.address?.socketAddress?.address;
    // Only a verified SVID binds an address to an identity; Envoy's principal alone does not.
    if (verified !== null && typeof src === 'string') this.identities.bindVerified(src, verified);
    if (!allowed) return;
    const identity = verified ?? (typeof input?.source_principal === 'string' ? input.source_principal : null);
    const dst = input?.attributes?.destination?.address?.socketAddress;
    if (identity === null || typeof dst?.address !== 'string' || typeof dst.portValue !== 'number') return;
    const address = this.canonical(dst.address);
    if (address !== null) this.lastAllowMs.set(key(identity, address, dst.portValue), this.clock.nowMs());
  }
}

function key(spiffeId: string, address: string, port: number): string {
  return `${spiffeId}\n${address}\n${port}`;
}
