import type { Clock } from '../clock';

/**
 * At most one log line per key per interval, for lines a caller (or a broken peer) could otherwise repeat
 * as fast as it sends: the line that is written says how many were held back since the last one. Keys
 * are codes or reasons, a bounded set; the count behind the line is a metric's job, not this one's.
 */
export class LogThrottle<K = string> {
  private readonly last = new Map<K, { atMs: number; held: number }>();

  constructor(
    private readonly clock: Clock,
    private readonly intervalMs: number,
  ) {}

  /** How many lines for `key` were held back since the last one written, when this one is to be written; else null. */
  admit(key: K): number | null {
    const nowMs = this.clock.nowMs();
    const last = this.last.get(key);
    if (last && nowMs - last.atMs < this.intervalMs) {
      last.held++;
      return null;
    }
    this.last.set(key, { atMs: nowMs, held: 0 });
    return last?.held ?? 0;
  }
}
