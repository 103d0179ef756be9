import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { BoundHistograms } from '../../../src/telemetry/bound-histogram';
import { Metrics } from '../../../src/telemetry/metrics';

const BOUNDS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5];
// On a bound (le is inclusive), between bounds, below the first, above the last (+Inf only), zero.
const VALUES = [0.0001, 0.00007, 0.00001, 0.7, 0, 0.0025, 0.3, 0.0001, 2, 0.00049];

/** Two histograms of the same shape, one fed through prom-client's observe(), one through a bound child. */
function pair(): {
  direct: Histogram<'protocol'>;
  bound: Histogram<'protocol'>;
  children: BoundHistograms<'protocol'>;
  registries: Registry[];
} {
  const registries = [new Registry(), new Registry()];
  const direct = new Histogram({ name: 'h', help: 'h', labelNames: ['protocol'], buckets: BOUNDS, registers: [registries[0]!] });
  const children = new BoundHistograms<'protocol'>(BOUNDS);
  const bound: Histogram<'protocol'> = new Histogram({
    name: 'h',
    help: 'h',
    labelNames: ['protocol'],
    buckets: BOUNDS,
    registers: [registries[1]!],
    collect: () => children.flush(bound),
  });
  return { direct, bound, children, registries };
}

/**
 * The exposition with each _sum line apart: a bound child adds its pending sum in one step, so after a
 * read in between the floating-point sum may differ from one-by-one addition in the last digit.
 */
async function exposition(r: Registry): Promise<{ text: string; sums: number[] }> {
  const lines = (await r.metrics()).split('\n');
  const sums = lines.filter((l) => /_sum[{ ]/.test(l)).map((l) => Number(l.split(' ').at(-1)));
  return { text: lines.filter((l) => !/_sum[{ ]/.test(l)).join('\n'), sums };
}

async function expectSameExposition(bound: Registry, direct: Registry): Promise<void> {
  const [b, a] = [await exposition(bound), await exposition(direct)];
  expect(b.text).toBe(a.text);
  expect(b.sums.length).toBe(a.sums.length);
  b.sums.forEach((sum, i) => expect(sum).toBeCloseTo(a.sums[i]!, 12));
}

describe('pre-bound histogram children (counted locally, moved into prom-client when read)', () => {
  it("reads exactly as prom-client's own observe() does: buckets, +Inf, sum and count, text and JSON", async () => {
    const { direct, children, registries } = pair();
    const grpc = children.bind({ protocol: 'grpc' });
    for (const v of VALUES) {
      direct.observe({ protocol: 'grpc' }, v);
      grpc.observe(v);
    }
    const [a, b] = registries as [Registry, Registry];
    expect(await b.metrics()).toBe(await a.metrics());
    expect(await b.getMetricsAsJSON()).toEqual(await a.getMetricsAsJSON());
    expect(await b.metrics()).toContain('h_bucket{le="0.0001",protocol="grpc"} 5');
    expect(await b.metrics()).toContain('h_count{protocol="grpc"} 10');
  });

  it('a second read adds nothing again; later observations add to what was moved', async () => {
    const { direct, children, registries } = pair();
    const grpc = children.bind({ protocol: 'grpc' });
    const [a, b] = registries as [Registry, Registry];
    const both = (v: number): void => {
      direct.observe({ protocol: 'grpc' }, v);
      grpc.observe(v);
    };
    VALUES.slice(0, 4).forEach(both);
    await b.metrics();
    await b.metrics();
    VALUES.slice(4).forEach(both);
    await expectSameExposition(b, a);
  });

  it('adds to direct observe() calls on the same label set, keeps label sets apart, and survives reset()', async () => {
    const { direct, bound, children, registries } = pair();
    const [a, b] = registries as [Registry, Registry];
    const grpc = children.bind({ protocol: 'grpc' });
    const http = children.bind({ protocol: 'http' });
    direct.observe({ protocol: 'grpc' }, 0.002);
    bound.observe({ protocol: 'grpc' }, 0.002);
    grpc.observe(0.0003);
    direct.observe({ protocol: 'grpc' }, 0.0003);
    http.observe(0.04);
    direct.observe({ protocol: 'http' }, 0.04);
    await expectSameExposition(b, a);
    direct.reset();
    bound.reset();
    grpc.observe(0.006);
    direct.observe({ protocol: 'grpc' }, 0.006);
    await expectSameExposition(b, a);
  });

  it('Metrics.checkDurationObserver: one child per protocol, read back through verdict_check_duration_seconds', async () => {
    const m = new Metrics({ defaultMetrics: false });
    expect(m.checkDurationObserver('grpc')).toBe(m.checkDurationObserver('grpc'));
    m.checkDurationObserver('grpc').observe(0.0008);
    m.checkDurationObserver('grpc').observe(0.03);
    const text = await m.registry.metrics();
    expect(text).toContain('verdict_check_duration_seconds_bucket{le="0.0005",protocol="grpc"} 0');
    expect(text).toContain('verdict_check_duration_seconds_bucket{le="0.001",protocol="grpc"} 1');
    expect(text).toContain('verdict_check_duration_seconds_bucket{le="+Inf",protocol="grpc"} 2');
    expect(Number(/^verdict_check_duration_seconds_sum\{protocol="grpc"\} (\S+)$/m.exec(text)?.[1])).toBeCloseTo(0.0308, 12);
    expect(text).toContain('verdict_check_duration_seconds_count{protocol="grpc"} 2');
  });
});
