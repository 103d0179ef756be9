import { AggregatorRegistry, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { CountingHistogram } from '../../../src/telemetry/counting-histogram';
import { Metrics } from '../../../src/telemetry/metrics';

/**
 * CountingHistogram against prom-client's own Histogram: the same observations into each, on registries of
 * their own, must give the same text exposition, the same JSON (getMetricsAsJSON, what cluster workers send)
 * and the same aggregated text in the primary (AggregatorRegistry.aggregate).
 */
const BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5];

type Op = { labels: Record<string, string>; value: number };

interface Pair {
  ours: CountingHistogram<'protocol' | 'step'>;
  theirs: Histogram<'protocol' | 'step'>;
  oursRegistry: Registry;
  theirsRegistry: Registry;
}

function pair(labelNames: ('protocol' | 'step')[] = ['protocol', 'step'], buckets = BUCKETS): Pair {
  const oursRegistry = new Registry();
  const theirsRegistry = new Registry();
  const config = { name: 'verdict_test_seconds', help: 'A test histogram.', labelNames, buckets };
  return {
    ours: new CountingHistogram({ ...config, registers: [oursRegistry] }),
    theirs: new Histogram({ ...config, registers: [theirsRegistry] }),
    oursRegistry,
    theirsRegistry,
  };
}

async function expectSameReadings(p: Pair): Promise<void> {
  expect(await p.oursRegistry.metrics()).toBe(await p.theirsRegistry.metrics());
  expect(JSON.stringify(await p.oursRegistry.getMetricsAsJSON())).toBe(JSON.stringify(await p.theirsRegistry.getMetricsAsJSON()));
}

// Values on every bound (a bound counts in its own bucket), between bounds, zero, negative, above the
// last bound (only in +Inf), and sums that are not exact in binary.
const EDGE_VALUES = [...BUCKETS, ...BUCKETS.map((b) => b * 1.0000001), 0, -0.001, 0.5000001, 3, 1e9, 0.1 + 0.2, 1e-12];

describe('CountingHistogram gives what prom-client Histogram gives for the same observations', () => {
  it('nothing observed: no series, as prom-client (text and JSON)', async () => {
    const p = pair();
    p.ours.bind({ protocol: 'grpc' }); // binding alone does not list a series
    await expectSameReadings(p);
  });

  it('bucket boundaries, +Inf, sum and count: text and JSON equal', async () => {
    const p = pair();
    const child = p.ours.bind({ protocol: 'grpc' });
    for (const v of EDGE_VALUES) {
      child.observe(v);
      p.theirs.observe({ protocol: 'grpc' }, v);
    }
    await expectSameReadings(p);
    const text = await p.oursRegistry.metrics();
    expect(text).toContain('verdict_test_seconds_bucket{le="0.00005",protocol="grpc"} ');
    expect(text).toContain(`verdict_test_seconds_bucket{le="+Inf",protocol="grpc"} ${EDGE_VALUES.length}`);
    expect(text).toContain(`verdict_test_seconds_count{protocol="grpc"} ${EDGE_VALUES.length}`);
  });

  it('several label sets, bound and unbound, listed in the order of first observation, label order kept', async () => {
    const p = pair();
    const ops: Op[] = [
      { labels: { step: 'eval' }, value: 0.0002 },
      { labels: { protocol: 'http' }, value: 0.003 },
      { labels: { step: 'eval', protocol: 'grpc' }, value: 0.00001 },
      { labels: { protocol: 'grpc', step: 'eval' }, value: 0.7 },
      { labels: { step: 'eval' }, value: 0.0004 },
    ];
    const grpc = p.ours.bind({ protocol: 'grpc' });
    for (const { labels, value } of ops) {
      p.ours.observe(labels, value);
      p.theirs.observe(labels, value);
    }
    grpc.observe(0.001);
    p.theirs.observe({ protocol: 'grpc' }, 0.001);
    await expectSameReadings(p);
  });

  it('startTimer observes the seconds it returns, under the labels given', async () => {
    const p = pair();
    const seconds = p.ours.startTimer({ protocol: 'http' })();
    p.theirs.observe({ protocol: 'http' }, seconds);
    expect(seconds).toBeGreaterThanOrEqual(0);
    await expectSameReadings(p);
  });

  it('a histogram without labels is listed from the start with zeros, and not again after reset', async () => {
    const p = pair([]);
    await expectSameReadings(p);
    p.ours.observe({}, 0.01);
    p.theirs.observe({}, 0.01);
    await expectSameReadings(p);
    p.ours.reset();
    p.theirs.reset();
    await expectSameReadings(p);
  });

  it('reset drops every series; a bound child starts a new one at its next observation', async () => {
    const p = pair();
    const child = p.ours.bind({ protocol: 'grpc' });
    child.observe(0.002);
    p.theirs.observe({ protocol: 'grpc' }, 0.002);
    p.oursRegistry.resetMetrics();
    p.theirsRegistry.resetMetrics();
    await expectSameReadings(p);
    child.observe(0.3);
    p.theirs.observe({ protocol: 'grpc' }, 0.3);
    await expectSameReadings(p);
  });

  it('cluster: the primary aggregates two workers to the same text', async () => {
    const workers = [pair(), pair()];
    workers.forEach((w, i) => {
      const child = w.ours.bind({ protocol: 'grpc' });
      for (const v of EDGE_VALUES.slice(i)) {
        child.observe(v * (i + 1));
        w.theirs.observe({ protocol: 'grpc' }, v * (i + 1));
      }
      w.ours.observe({ protocol: 'http' }, 0.004 * (i + 1));
      w.theirs.observe({ protocol: 'http' }, 0.004 * (i + 1));
    });
    const ours = AggregatorRegistry.aggregate(await Promise.all(workers.map((w) => w.oursRegistry.getMetricsAsJSON())));
    const theirs = AggregatorRegistry.aggregate(await Promise.all(workers.map((w) => w.theirsRegistry.getMetricsAsJSON())));
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(await ours.metrics()).toContain('verdict_test_seconds_bucket{le="+Inf",protocol="http"} 2');
  });

  it('refuses what prom-client refuses, and records nothing for it', async () => {
    const p = pair();
    const child = p.ours.bind({ protocol: 'grpc' });
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => child.observe(bad)).toThrow(TypeError);
      expect(() => p.ours.observe({ protocol: 'grpc' }, bad)).toThrow(TypeError);
      expect(() => p.theirs.observe({ protocol: 'grpc' }, bad)).toThrow(TypeError);
    }
    const unknown = { tenant: 'a' } as unknown as Record<'protocol', string>;
    expect(() => p.ours.observe(unknown, 1)).toThrow(/not included in initial labelset/);
    expect(() => p.theirs.observe(unknown, 1)).toThrow(/not included in initial labelset/);
    expect(() => p.ours.bind(unknown)).toThrow(/not included in initial labelset/);
    await expectSameReadings(p);
    expect(await p.oursRegistry.metrics()).not.toContain('_count');
    expect(() => new CountingHistogram({ name: 'x', help: 'x', labelNames: ['le'], buckets: [1], registers: [] })).toThrow(TypeError);
  });

  it("verdict's own histograms read as prom-client's would, beside the rest of the registry", async () => {
    const m = new Metrics({ defaultMetrics: false });
    const reference = new Registry();
    const check = new Histogram({
      name: 'verdict_check_duration_seconds',
      help: m.checkDuration.help,
      labelNames: ['protocol'],
      buckets: BUCKETS,
      registers: [reference],
    });
    const grpc = m.checkDuration.bind({ protocol: 'grpc' });
    for (const v of EDGE_VALUES) {
      grpc.observe(v);
      check.observe({ protocol: 'grpc' }, v);
    }
    const ours = (await m.registry.getSingleMetricAsString('verdict_check_duration_seconds')).trim();
    expect(ours).toBe((await reference.getSingleMetricAsString('verdict_check_duration_seconds')).trim());
    expect(await m.registry.metrics()).toContain(ours);
  });
});
