import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningVerdict } from '../../src/main';
import { defaultBundlePath, packageRoot } from '../../src/package-root';
import { referencedSeries } from '../helpers/metric-names';
import { startPrometheus, type RunningPrometheus } from '../helpers/prometheus-process';
import { checkClient, httpCheckRequest, startTestVerdict, tempDir } from '../helpers/verdict-harness';
import { waitFor } from '../helpers/wait-for';

// A real Prometheus (pinned, built with go install) scrapes three real verdict replicas every second and
// evaluates deploy/prometheus/verdict-rules.yaml. Replica c follows an HTTP bundle service; when that
// service goes down, VerdictBundleSourceDown fires for c alone. Every query of the Grafana dashboard
// (deploy/grafana/verdict-dashboard.json) then runs against this Prometheus: it must parse, name only
// series Prometheus has scraped metadata for, and the panels this setup feeds must return data.
// The rules are loaded as shipped except for their `for:` durations, set to 0s so the test takes
// seconds, not minutes (the durations themselves are covered by `promtool test rules`).

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}
interface Alert {
  labels: Record<string, string>;
  state: string;
}
interface Dashboard {
  panels: { title: string; targets: { expr: string }[] }[];
}

const dashboard = JSON.parse(readFileSync(join(packageRoot(), 'deploy', 'grafana', 'verdict-dashboard.json'), 'utf8')) as Dashboard;

/** Dashboard variables as Grafana would expand them with "All" selected. */
function expand(expr: string): string {
  return expr.replaceAll('$__rate_interval', '15s').replaceAll('$job', 'verdict').replaceAll('$instance', '.*');
}

/** A minimal OPA bundle service: the default bundle with an ETag; `down()` closes it and its connections. */
async function startBundleService(): Promise<{ url: string; down(): Promise<void> }> {
  const bytes = readFileSync(defaultBundlePath());
  const server: Server = createServer((req, res) => {
    if (req.headers['if-none-match'] === '"v1"') return void res.writeHead(304).end();
    res.writeHead(200, { etag: '"v1"', 'content-type': 'application/gzip' }).end(bytes);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/bundles/authz.tar.gz`,
    down: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

describe('a real Prometheus scraping three replicas', () => {
  const replicas: Record<'a' | 'b' | 'c', RunningVerdict | undefined> = { a: undefined, b: undefined, c: undefined };
  let bundleService: Awaited<ReturnType<typeof startBundleService>>;
  let prometheus: RunningPrometheus;
  const instance = (name: 'a' | 'b' | 'c'): string => `127.0.0.1:${replicas[name]!.httpPort}`;

  beforeAll(async () => {
    bundleService = await startBundleService();
    replicas.a = await startTestVerdict();
    replicas.b = await startTestVerdict();
    replicas.c = await startTestVerdict([
      'bundles.source.type=http',
      `bundles.source.url=${bundleService.url}`,
      'bundles.source.minDelayMs=200',
      'bundles.source.maxDelayMs=300',
      'bundles.source.timeoutMs=1000',
    ]);
    const dir = tempDir('verdict-prometheus-');
    const rules = readFileSync(join(packageRoot(), 'deploy', 'prometheus', 'verdict-rules.yaml'), 'utf8').replace(
      /^(\s+for:) \S+$/gm,
      '$1 0s',
    );
    writeFileSync(join(dir, 'rules.yaml'), rules);
    prometheus = await startPrometheus(
      dir,
      [
        'global: { scrape_interval: 1s, evaluation_interval: 1s }',
        'rule_files: [rules.yaml]',
        'scrape_configs:',
        '  - job_name: verdict',
        `    static_configs: [{ targets: [${(['a', 'b', 'c'] as const).map((n) => `"${instance(n)}"`).join(', ')}] }]`,
        '',
      ].join('\n'),
    );
    for (const v of Object.values(replicas)) {
      const client = checkClient(`127.0.0.1:${v!.grpcPort}`);
      await Promise.all([client.check(httpCheckRequest({ path: '/healthz' })), client.check(httpCheckRequest({ path: '/admin' }))]);
      client.close();
    }
  }, 120_000);

  afterAll(async () => {
    await prometheus?.stop();
    for (const v of Object.values(replicas)) await v?.stop();
    await bundleService?.down();
  });

  const query = (q: string): Promise<Sample[]> => prometheus.api<{ result: Sample[] }>('query', { query: q }).then((d) => d.result);
  const firing = async (alertname: string): Promise<string[]> =>
    (await prometheus.api<{ alerts: Alert[] }>('alerts')).alerts
      .filter((a) => a.labels.alertname === alertname && a.state === 'firing')
      .map((a) => a.labels.instance ?? '')
      .sort();

  it('scrapes all three replicas, decisions included', async () => {
    await waitFor(
      async () => (await query('verdict_decisions_total{job="verdict"}')).length >= 6,
      'decisions from all replicas',
      30_000,
      100,
    );
    const up = await query('up{job="verdict"}');
    expect(up.map((s) => [s.metric.instance, s.value[1]]).sort()).toEqual((['a', 'b', 'c'] as const).map((n) => [instance(n), '1']).sort());
    const reasons = await query('sum by (reason) (verdict_decisions_total{job="verdict"})');
    expect(Object.fromEntries(reasons.map((s) => [s.metric.reason, Number(s.value[1])]))).toEqual({ ALLOWED: 3, DENIED_BY_POLICY: 3 });
  });

  it('fires VerdictBundleSourceDown for the replica whose bundle source went down, and only for it', async () => {
    await waitFor(async () => (await prometheus.api<{ groups: unknown[] }>('rules')).groups.length === 2, 'rules loaded', 30_000, 100);
    expect(await firing('VerdictBundleSourceDown')).toEqual([]);
    await bundleService.down();
    await waitFor(async () => (await firing('VerdictBundleSourceDown')).length > 0, 'VerdictBundleSourceDown to fire', 60_000, 200);
    expect(await firing('VerdictBundleSourceDown')).toEqual([instance('c')]);
    // The replica still serves its last good bundle: a source outage never takes the good state down.
    expect(replicas.c!.policy.current).not.toBeNull();
  });

  it.each(dashboard.panels.flatMap((p) => p.targets.map((t) => [p.title, t.expr] as const)))(
    'dashboard panel "%s": its query runs and names scraped series',
    async (_title, expr) => {
      const metadata = await prometheus.api<Record<string, unknown>>('metadata');
      const known = (name: string): boolean => name.replace(/_(bucket|sum|count)$/, '') in metadata || name in metadata;
      expect(referencedSeries(expr).filter((n) => !known(n))).toEqual([]);
      await query(expand(expr));
    },
  );

  it.each([
    'Checks per second by result',
    'Fail-closed share (verdict could not decide)',
    'Deny reasons',
    'Check latency (server time)',
    'Active bundle per replica',
    'Bundle loads by outcome',
    'Kernel fast path',
    'Process CPU',
    'Resident memory',
    'Firing verdict alerts',
  ])('dashboard panel "%s" shows data from these replicas', async (title) => {
    const panel = dashboard.panels.find((p) => p.title === title);
    expect(panel).toBeDefined();
    // rate() needs two scrapes inside the window; wait for them instead of assuming a time.
    await waitFor(async () => (await query(expand(panel!.targets[0]!.expr))).length > 0, `data for "${title}"`, 30_000, 200);
  });
});
