/**
 * A token bucket of CPU time: credit accrues at `share` ns per ns of wall time, up to one second's worth,
 * and each evaluation spends what it took. While the credit is negative the shadow work waits, so over any
 * second the candidate uses at most about `share` of one core, whatever the request rate.
 */
export class CPUBudget {
  private creditNs: number;
  private lastNs: bigint;
  private readonly capNs: number;

  constructor(
    private readonly share: number,
    private readonly nowNs: () => bigint,
  ) {
    if (!(share > 0 && share <= 1)) throw new TypeError('CPU share must be in (0, 1]');
    this.capNs = share * 1e9;
    this.creditNs = this.capNs;
    this.lastNs = nowNs();
  }

  /** 0 when work may run now, else how long to wait (ms) until the credit is back to zero. */
  waitMs(): number {
    this.refill();
    return this.creditNs >= 0 ? 0 : Math.ceil(-this.creditNs / this.share / 1e6);
  }

  spend(ns: number): void {
    this.refill();
    this.creditNs -= ns;
  }

  private refill(): void {
    const now = this.nowNs();
    const elapsed = Number(now - this.lastNs);
    this.lastNs = now;
    this.creditNs = Math.min(this.capNs, this.creditNs + elapsed * this.share);
  }
}
