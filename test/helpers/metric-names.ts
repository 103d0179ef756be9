import { Metrics } from '../../src/telemetry/metrics';

/**
 * Every series name verdict exports, as Prometheus stores them: histograms as _bucket/_sum/_count,
 * counters with their _total name. Read from a real registry, so a renamed metric fails the deploy tests.
 */
export async function exportedSeriesNames(): Promise<Set<string>> {
  const metrics = new Metrics();
  const names = new Set<string>();
  for (const m of await metrics.registry.getMetricsAsJSON()) {
    const type = String(m.type);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m.name + s);
    else if (type === 'summary') for (const s of ['', '_sum', '_count']) names.add(m.name + s);
    else names.add(m.name);
  }
  return names;
}

/** The verdict_* series names a PromQL text refers to (recording rules use colons and are not matched). */
export function referencedSeries(promql: string): string[] {
  return [...new Set(promql.match(/\bverdict_[a-z0-9_]+\b/g) ?? [])];
}
