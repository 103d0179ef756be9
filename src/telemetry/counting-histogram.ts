import type { Metric, Registry } from 'prom-client';

/** One label set of a histogram, bound once: observe() is a bucket search and three additions. */
export interface HistogramChild {
  observe(value: number): void;
}

export interface CountingHistogramConfig<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
  /** Upper bounds, ascending (prom-client's `buckets`). */
  buckets: readonly number[];
  registers: Registry[];
}

type Labels<L extends string> = Partial<Record<L, string>>;

/** One series: its labels as first observed, per-bucket (not cumulative) counts, sum and count. */
interface Series<L extends string> {
  readonly labels: Labels<L>;
  readonly buckets: number[];
  sum: number;
  count: number;
}

/** What the registry reads (prom-client's Histogram `getForPromString` shape, value by value). */
interface PromValue {
  labels: Record<string, string | number>;
  sharedLabels: Record<string, string>;
  value: number;
  metricName: string;
  exemplar: null | undefined;
}

interface PromMetric<V> {
  name: string;
  help: string;
  type: 'histogram';
  values: V[];
  aggregator: 'sum';
}

/**
 * A Prometheus histogram that counts in plain numbers and is read through prom-client's public registry
 * interface (`registerMetric`, the metric's `get()` / `getForPromString()`), so the exposition and the
 * cluster aggregation are prom-client's own code over the same values prom-client's Histogram gives.
 *
 * prom-client's `observe(labels, value)` validates and hashes the label object on every call, and looks
 * the bucket up by turning the float bound into a property key (~1 µs and ~200 B per call; the Check
 * duration is observed once per Check). Here a hot path binds its label set once (`bind`); the slow path
 * (`observe(labels, value)`, `startTimer`) keeps prom-client's semantics: same label validation, same
 * grouping of label objects into series, series listed in the order of their first observation, a value
 * above every bound counted only in +Inf, non-finite values refused.
 * `test/unit/telemetry/counting-histogram.test.ts` holds the text and JSON to prom-client's Histogram.
 */
export class CountingHistogram<L extends string> {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly name: string;
  readonly help: string;
  private readonly labelNames: readonly L[];
  private readonly sortedLabelNames: readonly L[];
  private readonly bounds: readonly number[];
  /** By prom-client's label hash; insertion order is the order of first observation. */
  private series = new Map<string, Series<L>>();
  /** Bumped by reset(): a bound child looks its series up again. */
  private generation = 0;

  constructor(config: CountingHistogramConfig<L>) {
    if (config.labelNames.includes('le' as L)) throw new TypeError('le is a reserved label keyword');
    for (let i = 1; i < config.buckets.length; i++)
      if (!(config.buckets[i]! > config.buckets[i - 1]!)) throw new TypeError('histogram buckets must be in ascending order');
    this.name = config.name;
    this.help = config.help;
    this.labelNames = [...config.labelNames];
    this.sortedLabelNames = [...config.labelNames].sort();
    this.bounds = Object.freeze([...config.buckets]);
    // The registry reads only name, type, get/getForPromString and reset (Registry.registerMetric's type
    // names prom-client's own classes).
    for (const r of config.registers) r.registerMetric(this as unknown as Metric);
    // prom-client lists a histogram without labels from the start, with zero counts.
    if (this.labelNames.length === 0) this.seriesFor('', {});
  }

  /** A child for one label set; its series appears at its first observation, as with prom-client. */
  bind(labels: Labels<L>): HistogramChild {
    this.validate(labels);
    const frozen = Object.freeze({ ...labels });
    const hash = this.hash(frozen);
    let known: Series<L> | undefined;
    let generation = this.generation;
    return {
      observe: (value: number): void => {
        checkFinite(value);
        // Looked up only until its series exists (again after reset(), which drops every series).
        if (known === undefined || generation !== this.generation) {
          known = this.seriesFor(hash, frozen);
          generation = this.generation;
        }
        this.record(known, value);
      },
    };
  }

  /** prom-client's `observe(labels, value)`. */
  observe(labels: Labels<L>, value: number): void {
    this.validate(labels);
    checkFinite(value);
    this.record(this.seriesFor(this.hash(labels), labels), value);
  }

  /** prom-client's `startTimer(labels)`: the returned function observes the seconds since, and returns them. */
  startTimer(labels: Labels<L>): () => number {
    const start = process.hrtime();
    return () => {
      const delta = process.hrtime(start);
      const value = delta[0] + delta[1] / 1e9;
      this.observe({ ...labels }, value);
      return value;
    };
  }

  reset(): void {
    this.series = new Map();
    this.generation++;
  }

  /** For the text exposition (Registry.metrics): bucket labels apart from the series' labels. */
  getForPromString(): Promise<PromMetric<PromValue>> {
    return Promise.resolve(this.snapshot());
  }

  /** For getMetricsAsJSON (and the cluster aggregation): each value's labels with the series' merged in. */
  get(): Promise<PromMetric<Omit<PromValue, 'sharedLabels'>>> {
    const data = this.snapshot();
    return Promise.resolve({
      ...data,
      values: data.values.map(({ sharedLabels, labels, ...rest }) => ({ ...rest, labels: { ...labels, ...sharedLabels } })),
    });
  }

  private record(s: Series<L>, value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    // Above every bound: counted in +Inf (count) only.
    if (i < bounds.length) s.buckets[i]!++;
    s.sum += value;
    s.count += 1;
  }

  private seriesFor(hash: string, labels: Labels<L>): Series<L> {
    let s = this.series.get(hash);
    if (s === undefined) {
      s = { labels, buckets: this.bounds.map(() => 0), sum: 0, count: 0 };
      this.series.set(hash, s);
    }
    return s;
  }

  private snapshot(): PromMetric<PromValue> {
    const values: PromValue[] = [];
    const bucketName = `${this.name}_bucket`;
    for (const s of this.series.values()) {
      const shared = s.labels as Record<string, string>;
      let acc = 0;
      this.bounds.forEach((le, i) => {
        acc += s.buckets[i]!;
        values.push({ labels: { le }, sharedLabels: shared, value: acc, metricName: bucketName, exemplar: null });
      });
      values.push(
        { labels: { le: '+Inf' }, sharedLabels: shared, value: s.count, metricName: bucketName, exemplar: null },
        { labels: {}, sharedLabels: shared, value: s.sum, metricName: `${this.name}_sum`, exemplar: undefined },
        { labels: {}, sharedLabels: shared, value: s.count, metricName: `${this.name}_count`, exemplar: undefined },
      );
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** prom-client's series identity: the set label values, in sorted label-name order. */
  private hash(labels: Labels<L>): string {
    let hash = '';
    for (const name of this.sortedLabelNames) {
      const value = labels[name];
      if (value !== undefined) hash += `${name}:${value},`;
    }
    return hash;
  }

  private validate(labels: Labels<L>): void {
    for (const name in labels)
      if (!this.labelNames.includes(name as L))
        throw new Error(
          `Added label "${name}" is not included in initial labelset: [ ${this.labelNames.map((n) => `'${n}'`).join(', ')} ]`,
        );
  }
}

function checkFinite(value: number): void {
  if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${String(value)}`);
}
