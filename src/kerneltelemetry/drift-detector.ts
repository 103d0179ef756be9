import type { KernelTelemetryConfig } from '../config/sections/kernel-telemetry';
import type { AllowIndex } from './allow-index';
import { UNKNOWN_IDENTITY } from './cgroup-identities';
import type { AggregateDelta } from './series-book';

export interface Unexplained {
  spiffeId: string;
  dstAddress: string;
  dstPort: number;
  /** Connections established in this batch. */
  count: number;
  /** When the kernel read first showed them (wall ms). */
  seenMs: number;
}

/**
 * The drift signal: connections the kernel saw established from a workload to a destination for which
 * verdict made no allow decision for that workload's identity within `windowMs` (traffic that bypassed
 * Envoy, or a workload doing more than its policy grants). New connections wait `graceMs` before being
 * judged, since Envoy asks verdict only after it has accepted the connection. Connections of an unknown
 * identity are never explained. Pending batches are bounded by `maxTracked`; overflow is judged at once.
 */
export class DriftDetector {
  private pending: Unexplained[] = [];

  constructor(
    private readonly settings: KernelTelemetryConfig['drift'],
    private readonly allows: AllowIndex,
  ) {}

  /** Records the established deltas of one read and returns every batch whose grace has passed, unexplained. */
  judge(deltas: readonly AggregateDelta[], nowMs: number): Unexplained[] {
    for (const d of deltas)
      if (d.delta.established > 0)
        this.pending.push({
          spiffeId: d.spiffeId,
          dstAddress: d.dstAddress,
          dstPort: d.dstPort,
          count: d.delta.established,
          seenMs: nowMs,
        });
    const due = this.pending.length > this.settings.maxTracked ? Infinity : nowMs - this.settings.graceMs;
    const out: Unexplained[] = [];
    const keep: Unexplained[] = [];
    for (const p of this.pending) {
      if (p.seenMs > due) keep.push(p);
      else if (!this.explained(p)) out.push(p);
    }
    this.pending = keep;
    return out;
  }

  get pendingCount(): number {
    return this.pending.length;
  }

  private explained(p: Unexplained): boolean {
    if (p.spiffeId === UNKNOWN_IDENTITY) return false;
    const at = this.allows.lastAllowed(p.spiffeId, p.dstAddress, p.dstPort);
    return at !== null && at >= p.seenMs - this.settings.windowMs;
  }
}
