import { describe, expect, it } from 'vitest';
import type { Clock } from '../../../src/clock';
import type { Decision } from '../../../src/decision/decision';
import type { DecisionRecord } from '../../../src/decisionlog/decision-record';
import { AllowIndex } from '../../../src/kerneltelemetry/allow-index';
import { CgroupIdentities, UNKNOWN_IDENTITY } from '../../../src/kerneltelemetry/cgroup-identities';
import { DriftDetector } from '../../../src/kerneltelemetry/drift-detector';
import type { AggregateDelta } from '../../../src/kerneltelemetry/series-book';
import { emptyStats } from '../../../src/kerneltelemetry/telemetry-layout';

const ID = 'spiffe://t/a';

function fixture(settings: Partial<{ windowMs: number; graceMs: number; maxTracked: number }> = {}) {
  let now = 1_000_000;
  const clock: Clock = { nowMs: () => now, monotonicNs: () => BigInt(now) * 1_000_000n };
  const cgroups = new CgroupIdentities(
    [{ cgroupPath: '/cg/a', spiffeId: ID }],
    () => {},
    () => 1n,
  );
  const allows = new AllowIndex(100, clock, cgroups);
  const drift = new DriftDetector(
    { enabled: true, windowMs: 60_000, graceMs: 0, maxTracked: 100, maxEventsPerRead: 10, ...settings },
    allows,
  );
  const allow = (spiffeId: string, address: string, port: number, allowed = true): void => {
    const record = {
      input: {
        attributes: {
          source: { address: { socketAddress: { address: '10.0.0.9' } } },
          destination: { address: { socketAddress: { address, portValue: port } } },
        },
        spiffe: { id: spiffeId },
      },
    } as unknown as DecisionRecord;
    allows.observe(record, { allowed } as Decision);
  };
  const established = (spiffeId: string, port: number, n = 1): AggregateDelta => ({
    spiffeId,
    dstAddress: '0:0:0:0:0:0:0:1',
    dstPort: port,
    delta: { ...emptyStats(), established: n },
  });
  return { drift, allow, established, advance: (ms: number) => (now += ms), now: () => now };
}

describe('DriftDetector', () => {
  it('a connection verdict allowed (same identity, destination) within the window is explained', () => {
    const f = fixture();
    f.allow(ID, '::1', 443); // the input's text form; the kernel's canonical form matches it
    expect(f.drift.judge([f.established(ID, 443)], f.now())).toEqual([]);
  });

  const unexplained = [
    { name: 'no decision at all', setup: () => {}, port: 443, who: ID },
    { name: 'a deny only', setup: (f: ReturnType<typeof fixture>) => f.allow(ID, '::1', 443, false), port: 443, who: ID },
    { name: 'allowed for another port', setup: (f: ReturnType<typeof fixture>) => f.allow(ID, '::1', 8443), port: 443, who: ID },
    {
      name: 'allowed for another identity',
      setup: (f: ReturnType<typeof fixture>) => f.allow('spiffe://t/other', '::1', 443),
      port: 443,
      who: ID,
    },
    {
      name: 'an unknown identity, even with an allow for "unknown"',
      setup: (f: ReturnType<typeof fixture>) => f.allow(UNKNOWN_IDENTITY, '::1', 443),
      port: 443,
      who: UNKNOWN_IDENTITY,
    },
    {
      name: 'the allow is older than the window',
      setup: (f: ReturnType<typeof fixture>) => {
        f.allow(ID, '::1', 443);
        f.advance(60_001);
      },
      port: 443,
      who: ID,
    },
  ];
  it.each(unexplained)('unexplained: $name', ({ setup, port, who }) => {
    const f = fixture();
    setup(f);
    expect(f.drift.judge([f.established(who, port, 2)], f.now())).toEqual([
      expect.objectContaining({ spiffeId: who, dstPort: port, count: 2 }),
    ]);
  });

  it('grace: a connection is judged only after graceMs, so an allow arriving just after the handshake explains it', () => {
    const f = fixture({ graceMs: 2000 });
    expect(f.drift.judge([f.established(ID, 443)], f.now())).toEqual([]);
    expect(f.drift.pendingCount).toBe(1);
    f.advance(500);
    f.allow(ID, '::1', 443);
    f.advance(1500);
    expect(f.drift.judge([], f.now())).toEqual([]);
    expect(f.drift.pendingCount).toBe(0);
  });

  it('pending judgements are bounded: past maxTracked everything is judged at once', () => {
    const f = fixture({ graceMs: 10_000, maxTracked: 3 });
    const out = f.drift.judge(
      [1, 2, 3, 4].map((p) => f.established(ID, p)),
      f.now(),
    );
    expect(out).toHaveLength(4);
    expect(f.drift.pendingCount).toBe(0);
  });
});

describe('CgroupIdentities', () => {
  const rows = [
    { cgroupPath: '/cg/static', spiffeId: 'spiffe://t/static' },
    { cgroupPath: '/cg/bound', sourceAddress: '10.0.0.7' },
  ];
  const ids: Record<string, bigint> = { '/cg/static': 11n, '/cg/bound': 12n };

  it('a configured row names its ID; a source-address row takes the verified SVID seen from that address', () => {
    const c = new CgroupIdentities(
      rows,
      () => {},
      (p) => ids[p] ?? null,
    );
    expect(c.spiffeIdOf(11n)).toBe('spiffe://t/static');
    expect(c.spiffeIdOf(12n)).toBe(UNKNOWN_IDENTITY);
    c.bindVerified('10.0.0.8', 'spiffe://t/elsewhere');
    expect(c.spiffeIdOf(12n)).toBe(UNKNOWN_IDENTITY);
    c.bindVerified('10.0.0.7', 'spiffe://t/bound');
    expect(c.spiffeIdOf(12n)).toBe('spiffe://t/bound');
    expect(c.spiffeIdOf(99n)).toBe(UNKNOWN_IDENTITY);
  });

  it('two different verified IDs from one address make the row ambiguous for good: unknown, never either', () => {
    const seen: string[] = [];
    const c = new CgroupIdentities(
      rows,
      (src) => seen.push(src),
      (p) => ids[p] ?? null,
    );
    c.bindVerified('10.0.0.7', 'spiffe://t/one');
    c.bindVerified('10.0.0.7', 'spiffe://t/two');
    c.bindVerified('10.0.0.7', 'spiffe://t/one');
    expect(c.spiffeIdOf(12n)).toBe(UNKNOWN_IDENTITY);
    expect(seen).toEqual(['10.0.0.7']);
  });

  it('resolve() follows a re-created cgroup to its new id', () => {
    const live = { ...ids };
    const c = new CgroupIdentities(
      rows,
      () => {},
      (p) => live[p] ?? null,
    );
    live['/cg/static'] = 21n;
    expect(c.has(21n)).toBe(false);
    c.resolve();
    expect(c.spiffeIdOf(21n)).toBe('spiffe://t/static');
    expect(c.has(11n)).toBe(false);
  });
});
