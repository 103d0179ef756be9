/** Time is injected, never read inside verifiers, so expiry and timeouts are testable. */
export interface Clock {
  /** Wall clock, ms since the epoch. */
  nowMs(): number;
  /** Monotonic, ns (for durations). */
  monotonicNs(): bigint;
}

export const systemClock: Clock = Object.freeze({
  nowMs: () => Date.now(),
  monotonicNs: () => process.hrtime.bigint(),
});
