import { statSync } from 'node:fs';
import type { KernelTelemetryConfig } from '../config/sections/kernel-telemetry';
import { canonicalAddress } from './telemetry-layout';

/** The label of connections whose cgroup has no (unambiguous) SPIFFE ID: never attributed to anyone. */
export const UNKNOWN_IDENTITY = 'unknown';

type Row = KernelTelemetryConfig['identities'][number];

interface Binding {
  row: Row;
  /**
   * sourceAddress rows: a verified SPIFFE ID seen from the address; 'ambiguous' once two differ.
   * delegatedIdentity rows: the ID the SPIRE agent gives the cgroup's processes now (DelegatedBindings), or null.
   */
  verified: string | null;
}

/**
 * cgroup id → SPIFFE ID, from the configured table: a row names the ID itself, or the source address from
 * which verdict verified the workload's SVID, or defers to the SPIRE agent (`delegatedIdentity`, bound through
 * `bindDelegated`). Two different verified IDs from one address make that row ambiguous for good (deny on
 * doubt: its traffic is then attributed to `unknown`, not to either).
 */
export class CgroupIdentities {
  private byCgroup = new Map<bigint, Binding>();
  private readonly bySource = new Map<string, Binding>();
  private readonly bindings: Binding[];

  constructor(
    rows: readonly Row[],
    private readonly onAmbiguous: (sourceAddress: string) => void = () => {},
    private readonly cgroupIdOf: (path: string) => bigint | null = inodeOf,
  ) {
    this.bindings = rows.map((row) => ({ row, verified: null }));
    for (const b of this.bindings) {
      const src = b.row.sourceAddress === undefined ? null : canonicalAddress(b.row.sourceAddress);
      if (src !== null) this.bySource.set(src, b);
    }
    this.resolve();
  }

  /** Re-reads every row's cgroup id (a re-created cgroup has a new one). Bounded by the table (≤ 1024 rows). */
  resolve(): void {
    const next = new Map<bigint, Binding>();
    for (const b of this.bindings) {
      const id = this.cgroupIdOf(b.row.cgroupPath);
      if (id !== null) next.set(id, b);
    }
    this.byCgroup = next;
  }

  has(cgroupId: bigint): boolean {
    return this.byCgroup.has(cgroupId);
  }

  spiffeIdOf(cgroupId: bigint): string {
    const b = this.byCgroup.get(cgroupId);
    if (!b) return UNKNOWN_IDENTITY;
    if (b.row.spiffeId !== undefined) return b.row.spiffeId;
    return b.verified === null || b.verified === 'ambiguous' ? UNKNOWN_IDENTITY : b.verified;
  }

  /** The SPIRE agent's answer for a delegatedIdentity row's cgroup: its one SPIFFE ID, or null (none, or ambiguous). */
  bindDelegated(cgroupPath: string, spiffeId: string | null): void {
    for (const b of this.bindings) if (b.row.delegatedIdentity && b.row.cgroupPath === cgroupPath) b.verified = spiffeId;
  }

  /** verdict verified `spiffeId` on a request from `sourceAddress`. */
  bindVerified(sourceAddress: string, spiffeId: string): void {
    if (this.bySource.size === 0) return; // no row is bound by address: nothing to learn (the common case, per Check)
    const src = canonicalAddress(sourceAddress);
    const b = src === null ? undefined : this.bySource.get(src);
    if (!b || b.verified === spiffeId || b.verified === 'ambiguous') return;
    if (b.verified === null) {
      b.verified = spiffeId;
      return;
    }
    b.verified = 'ambiguous';
    this.onAmbiguous(sourceAddress);
  }
}

function inodeOf(path: string): bigint | null {
  try {
    // cgroup v2: a cgroup's id (bpf_get_current_cgroup_id) is its kernfs node id, the directory's inode.
    return statSync(path, { bigint: true }).ino;
  } catch {
    return null;
  }
}
