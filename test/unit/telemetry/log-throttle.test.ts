import { describe, expect, it } from 'vitest';
import { LogThrottle } from '../../../src/telemetry/log-throttle';

describe('LogThrottle', () => {
  it('admits one line per key per interval and says how many were held back since the last', () => {
    let nowMs = 1_000;
    const throttle = new LogThrottle<string>({ nowMs: () => nowMs, monotonicNs: () => 0n }, 60_000);
    expect(throttle.admit('A')).toBe(0);
    expect([throttle.admit('A'), throttle.admit('A'), throttle.admit('A')]).toEqual([null, null, null]);
    expect(throttle.admit('B')).toBe(0); // another key has its own interval
    nowMs += 59_999;
    expect(throttle.admit('A')).toBeNull();
    nowMs += 1;
    expect(throttle.admit('A')).toBe(4);
    expect(throttle.admit('A')).toBeNull();
    nowMs += 60_000;
    expect(throttle.admit('A')).toBe(1);
    expect(throttle.admit('B')).toBe(0);
  });
});
