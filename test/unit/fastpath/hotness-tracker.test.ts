import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Clock } from '../../../src/clock';
import type { Decision, ReasonCode } from '../../../src/decision/decision';
import type { DecisionRecord } from '../../../src/decisionlog/decision-record';
import type { CacheDeclaration } from '../../../src/fastpath/kernel-eligibility';
import { HotnessTracker } from '../../../src/fastpath/hotness-tracker';
import type { KernelVerdictMap } from '../../../src/fastpath/kernel-verdict-map';
import { KernelWriter } from '../../../src/fastpath/kernel-writer';
import { Metrics } from '../../../src/telemetry/metrics';
import { loadTestMap, requireBPF } from '../../helpers/bpf-kernel';

const SHA = 'a'.repeat(64);
function declaration(keyPaths: string[]): CacheDeclaration {
  return { keyPaths, keySegments: keyPaths.map((p) => p.split('.')), ttlMs: 30_000, denyTtlMs: 10_000 };
}
const L4 = declaration([
  'attributes.source.address.socketAddress.address',
  'attributes.destination.address.socketAddress.address',
  'attributes.destination.address.socketAddress.portValue',
]);
const BY_IDENTITY = declaration(['spiffe.id', ...L4.keyPaths.slice(1)]);

/** The tracker against the real kernel map (loaded, not attached): what it writes is what the kernel would read. */
describe('hotness tracker', () => {
  let map: KernelVerdictMap;
  let writer: KernelWriter;
  let tracker: HotnessTracker;
  let nowMs: number;
  const clock: Clock = { nowMs: () => nowMs, monotonicNs: () => BigInt(nowMs) * 1_000_000n };
  const errors: unknown[] = [];

  beforeAll(() => {
    map = loadTestMap(requireBPF(), null);
  });
  afterAll(() => map?.close());
  beforeEach(() => {
    nowMs = 1_764_000_000_000;
    writer?.close();
    writer = new KernelWriter(map, 64, new Metrics({ defaultMetrics: false }), (e) => errors.push(e), 1000n);
    writer.bumpGeneration();
    tracker = new HotnessTracker({ hotHits: 3, hotWindowMs: 1000, maxTracked: 100, maxEntryTtlMs: 60_000 }, writer, clock);
    tracker.setBundle({ sha256: SHA, declaration: L4 });
  });

  const record = (src: string, extra: Record<string, unknown> = {}, sha = SHA): DecisionRecord => ({
    decision_id: 'd',
    timestamp: '',
    protocol: 'grpc',
    bundle: { name: 'b', revision: '', sha256: sha },
    input: {
      attributes: {
        source: { address: { socketAddress: { address: src, portValue: 40000 } } },
        destination: { address: { socketAddress: { address: '127.0.0.1', portValue: 9000 } } },
      },
      ...extra,
    },
    allowed: false,
    http_status: 403,
    reason: 'DENIED_BY_POLICY',
    cached: false,
    fastpath: false,
    timings_ns: { total: 0 },
  });
  const decision = (allowed: boolean, reason: ReasonCode = allowed ? 'ALLOWED' : 'DENIED_BY_POLICY'): Decision => ({
    id: 'd',
    allowed,
    reason,
    httpStatus: 403,
  });
  const observe = (times: number, rec: DecisionRecord, dec: Decision): void => {
    for (let i = 0; i < times; i++) tracker.observe(rec, dec);
    writer.flush();
  };
  const entry = (src: string) => map.entries(1024).find((e) => e.srcAddress === src && e.generation === writer.generation);

  it('turns hot after hotHits identical decisions, with the deny TTL', () => {
    observe(2, record('10.0.0.1'), decision(false));
    expect(entry('10.0.0.1')).toBeUndefined();
    const before = map.kernelNowNs();
    observe(1, record('10.0.0.1'), decision(false));
    const e = entry('10.0.0.1');
    expect(e).toMatchObject({ action: 'deny', dstAddress: '127.0.0.1', dstPort: 9000 });
    const ttlNs = (e?.expiresNs ?? 0n) - before;
    expect(ttlNs).toBeGreaterThan(9_000_000_000n);
    expect(ttlNs).toBeLessThanOrEqual(10_100_000_000n);
  });

  it('hits spread wider than the window stay cold', () => {
    for (let i = 0; i < 5; i++) {
      observe(1, record('10.0.0.2'), decision(true));
      nowMs += 600;
    }
    expect(entry('10.0.0.2')).toBeUndefined();
  });

  const neverMirrored = [
    { name: 'an error deny', rec: () => record('10.0.1.1'), dec: decision(false, 'ERR_POLICY_EVAL') },
    { name: 'a decision of another bundle', rec: () => record('10.0.1.2', {}, 'b'.repeat(64)), dec: decision(false) },
    { name: 'a decision without a destination', rec: () => ({ ...record('10.0.1.3'), input: { attributes: {} } }), dec: decision(false) },
  ];
  it.each(neverMirrored)('never mirrors $name', ({ rec, dec }) => {
    observe(5, rec(), dec);
    expect(map.entries(1024).filter((e) => e.generation === writer.generation && e.srcAddress.startsWith('10.0.1.'))).toEqual([]);
  });

  it('never mirrors a bundle whose key is not L4-only', () => {
    tracker.setBundle({ sha256: SHA, declaration: null });
    observe(5, record('10.0.2.1'), decision(false));
    expect(entry('10.0.2.1')).toBeUndefined();
  });

  it('a flipped verdict for the same tuple withdraws the kernel entry', () => {
    observe(3, record('10.0.3.1'), decision(true));
    expect(entry('10.0.3.1')?.action).toBe('allow');
    observe(1, record('10.0.3.1'), decision(false));
    expect(entry('10.0.3.1')).toBeUndefined();
  });

  describe('identity bound to an address', () => {
    beforeEach(() => tracker.setBundle({ sha256: SHA, declaration: BY_IDENTITY }));
    const spiffe = (id: string, expiresInMs: number) => ({ spiffe: { id, expires_at: new Date(nowMs + expiresInMs).toISOString() } });

    it('without a verified identity the decision is not mirrored', () => {
      observe(5, record('10.0.4.1'), decision(false));
      expect(entry('10.0.4.1')).toBeUndefined();
    });

    it('an entry never outlives the SVID it was made for', () => {
      const before = map.kernelNowNs();
      observe(3, record('10.0.4.2', spiffe('spiffe://example.org/a', 2_000)), decision(false));
      const ttlNs = (entry('10.0.4.2')?.expiresNs ?? 0n) - before;
      expect(ttlNs).toBeGreaterThan(1_000_000_000n);
      expect(ttlNs).toBeLessThanOrEqual(2_100_000_000n);
    });

    it('an expired SVID is never mirrored', () => {
      observe(3, record('10.0.4.3', spiffe('spiffe://example.org/a', -1)), decision(false));
      expect(entry('10.0.4.3')).toBeUndefined();
    });

    it('another identity from the same address withdraws the entry', () => {
      observe(3, record('10.0.4.4', spiffe('spiffe://example.org/a', 60_000)), decision(true));
      expect(entry('10.0.4.4')?.action).toBe('allow');
      observe(1, record('10.0.4.4', spiffe('spiffe://example.org/b', 60_000)), decision(true));
      expect(entry('10.0.4.4')).toBeUndefined();
    });
  });

  it('writes queued before a generation bump are discarded, not written under the new generation', () => {
    for (let i = 0; i < 3; i++) tracker.observe(record('10.0.5.1'), decision(false));
    writer.bumpGeneration();
    writer.flush();
    expect(map.entries(1024).some((e) => e.srcAddress === '10.0.5.1')).toBe(false);
    expect(errors).toEqual([]);
  });
});
