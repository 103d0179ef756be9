import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse, parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load-config';
import { configSchema } from '../../src/config/schema';
import { packageRoot } from '../../src/package-root';
import { pinnedTool } from '../helpers/pinned-tool';

// deploy/helm/verdict with the pinned helm: `helm lint` and `helm template` for every values profile; every
// rendered object validated against the Kubernetes, Istio and Prometheus Operator schemas shipped on npm
// (kubernetes-models, @kubernetes-models/istio, @kubernetes-models/prometheus-operator); the rendered
// ConfigMap validated by verdict's own config schema; the security and shutdown rules checked on the
// rendered pods; and the committed deploy/kubernetes/ files equal to the chart's output.

const run = promisify(execFile);
// helm template's built-in default is older than the chart's kubeVersion; render for a current release.
const KUBE_VERSION = '1.30.0';
const root = packageRoot();
const chart = join(root, 'deploy', 'helm', 'verdict');
type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  // Rendered manifests are walked freely in assertions; each one is schema-validated first.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
  spec?: any;
  data?: Record<string, string>;
};

const PROFILES: readonly (readonly [string, string[]])[] = [
  ['defaults (deployment)', []],
  ['ci/deployment-values.yaml', ['-f', join(chart, 'ci', 'deployment-values.yaml')]],
  ['ci/daemonset-values.yaml', ['-f', join(chart, 'ci', 'daemonset-values.yaml')]],
  ['ci/istio-values.yaml', ['-f', join(chart, 'ci', 'istio-values.yaml')]],
];

async function helm(...args: string[]): Promise<string> {
  try {
    return (await run(pinnedTool('helm'), args, { maxBuffer: 16 * 1024 * 1024 })).stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`helm ${args.join(' ')} failed:\n${e.stdout ?? ''}${e.stderr ?? e.message}`);
  }
}

const render = (args: string[]): Promise<string> =>
  helm('template', 'verdict', chart, '--namespace', 'verdict-system', '--kube-version', KUBE_VERSION, ...args);
const objects = (text: string): K8sObject[] =>
  parseAllDocuments(text)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);

/** The npm model class for an object's apiVersion and kind; throws for a kind no schema package covers. */
async function modelFor(o: K8sObject): Promise<new (data: unknown) => { validate(): void }> {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  const modules: Record<string, string> = {
    '': `kubernetes-models/${version}`,
    'security.istio.io': `@kubernetes-models/istio/security.istio.io/${version}`,
    'install.istio.io': `@kubernetes-models/istio/install.istio.io/${version}`,
    'monitoring.coreos.com': `@kubernetes-models/prometheus-operator/monitoring.coreos.com/${version}`,
  };
  const mod = (await import(modules[group!] ?? `kubernetes-models/${group}/${version}`)) as Record<string, unknown>;
  const model = mod[o.kind];
  if (typeof model !== 'function') throw new Error(`no schema for ${o.apiVersion} ${o.kind}`);
  return model as new (data: unknown) => { validate(): void };
}

function workloads(objs: K8sObject[]): K8sObject[] {
  return objs.filter((o) => o.kind === 'Deployment' || o.kind === 'DaemonSet');
}

function renderedConfig(objs: K8sObject[]): ReturnType<typeof validateConfig> {
  const cm = objs.find((o) => o.kind === 'ConfigMap');
  return validateConfig(parse(cm!.data!['verdict.yaml']!));
}

describe.each(PROFILES)('helm chart, profile %s', (_name, args) => {
  let rendered: K8sObject[] = [];

  it('passes helm lint', async () => {
    expect(await helm('lint', chart, '--strict', '--kube-version', KUBE_VERSION, ...args)).toMatch(
      /1 chart\(s\) linted, 0 chart\(s\) failed/,
    );
  });

  it('renders objects that each validate against their Kubernetes / Istio / Prometheus Operator schema', async () => {
    rendered = objects(await render(args));
    expect(rendered.length).toBeGreaterThan(4);
    for (const o of rendered) {
      const Model = await modelFor(o);
      expect(() => new Model(o).validate(), `${o.kind} ${o.metadata.name}`).not.toThrow();
    }
  });

  it("renders a ConfigMap that verdict's own config schema accepts", () => {
    const config = renderedConfig(rendered);
    expect(config.server.drainWindowMs).toBeGreaterThan(0);
  });

  it('gives the pod more termination grace than drain window + shutdown grace', () => {
    const config = renderedConfig(rendered);
    for (const w of workloads(rendered)) {
      const graceS = w.spec.template.spec.terminationGracePeriodSeconds as number;
      expect(graceS * 1000).toBeGreaterThan(config.server.drainWindowMs + config.server.shutdownGraceMs);
    }
  });

  it('probes readiness on /readyz, liveness and start-up on /healthz', () => {
    for (const w of workloads(rendered)) {
      const c = w.spec.template.spec.containers[0];
      expect([c.readinessProbe.httpGet.path, c.livenessProbe.httpGet.path, c.startupProbe.httpGet.path]).toEqual([
        '/readyz',
        '/healthz',
        '/healthz',
      ]);
    }
  });

  it('locks the container down; only the fast-path DaemonSet adds capabilities, exactly BPF, NET_ADMIN, PERFMON', () => {
    const fastpath = renderedConfig(rendered).fastpath.enabled;
    for (const w of workloads(rendered)) {
      const sc = w.spec.template.spec.containers[0].securityContext;
      expect(sc.readOnlyRootFilesystem).toBe(true);
      expect(sc.allowPrivilegeEscalation).toBe(false);
      expect(sc.capabilities.drop).toEqual(['ALL']);
      if (fastpath) {
        expect(w.kind).toBe('DaemonSet');
        expect(sc.capabilities.add).toEqual(['BPF', 'NET_ADMIN', 'PERFMON']);
      } else {
        expect(sc.capabilities.add).toBeUndefined();
        expect(sc.runAsNonRoot).toBe(true);
        expect(w.spec.template.spec.securityContext.runAsNonRoot).toBe(true);
      }
    }
  });
});

describe('helm chart: the schema check itself', () => {
  it.each([
    ['a Deployment with replicas "three"', 'Deployment', (o: K8sObject) => (o.spec.replicas = 'three')],
    ['an AuthorizationPolicy with action BOGUS', 'AuthorizationPolicy', (o: K8sObject) => (o.spec.action = 'BOGUS')],
    [
      'a container whose capabilities.drop is not a list',
      'Deployment',
      (o: K8sObject) => (o.spec.template.spec.containers[0].securityContext.capabilities.drop = 'ALL'),
    ],
  ])('refuses %s (so a pass above means something)', async (_name, kind, mutate) => {
    const o = objects(await render(['-f', join(chart, 'ci', 'istio-values.yaml')])).find((x) => x.kind === kind)!;
    mutate(o);
    const Model = await modelFor(o);
    expect(() => new Model(o).validate()).toThrow();
  });
});

describe('helm chart: what the profiles select', () => {
  it('deployment mode: a Deployment behind a Service, PDB, HPA, ServiceMonitor, PrometheusRule, NetworkPolicy, SPIRE socket via csi.spiffe.io', async () => {
    const objs = objects(await render(['-f', join(chart, 'ci', 'deployment-values.yaml')]));
    expect(objs.map((o) => o.kind).sort()).toEqual(
      [
        'ConfigMap',
        'Deployment',
        'HorizontalPodAutoscaler',
        'NetworkPolicy',
        'PodDisruptionBudget',
        'PrometheusRule',
        'Service',
        'ServiceAccount',
        'ServiceMonitor',
      ].sort(),
    );
    const pod = workloads(objs)[0]!.spec.template.spec;
    expect(pod.volumes.find((v: { name: string }) => v.name === 'spire-agent-socket')).toMatchObject({
      csi: { driver: 'csi.spiffe.io', readOnly: true },
    });
    expect(renderedConfig(objs).identity.workloadAPI.socket).toBe('unix:///spiffe-workload-api/spire-agent.sock');
    const rule = objs.find((o) => o.kind === 'PrometheusRule')!;
    expect(rule.spec).toEqual(parse(readFileSync(join(root, 'deploy', 'prometheus', 'verdict-rules.yaml'), 'utf8')));
  });

  it('daemonset mode: node-local Service, host Unix socket, SPIRE socket by hostPath, fast path with bpffs', async () => {
    const objs = objects(await render(['-f', join(chart, 'ci', 'daemonset-values.yaml')]));
    expect(objs.map((o) => o.kind)).not.toContain('Deployment');
    expect(objs.map((o) => o.kind)).not.toContain('HorizontalPodAutoscaler');
    expect(objs.find((o) => o.kind === 'Service')!.spec.internalTrafficPolicy).toBe('Local');
    const config = renderedConfig(objs);
    expect(config.server.grpc.unixSocket).toBe('/run/verdict/verdict.sock');
    expect(config.fastpath).toMatchObject({ enabled: true, cgroupPath: '/sys/fs/cgroup/kubepods.slice' });
    const volumes = Object.fromEntries(
      (workloads(objs)[0]!.spec.template.spec.volumes as { name: string; hostPath?: { path: string } }[]).map((v) => [
        v.name,
        v.hostPath?.path,
      ]),
    );
    expect(volumes).toMatchObject({
      'spire-agent-socket': '/run/spire/agent-sockets',
      'verdict-socket': '/run/verdict',
      bpffs: '/sys/fs/bpf',
    });
  });

  it("istio: the extension provider names the chart's Service and the AuthorizationPolicy uses that provider", async () => {
    const objs = objects(await render(['-f', join(chart, 'ci', 'istio-values.yaml')]));
    const operator = objs.find((o) => o.kind === 'IstioOperator')!;
    const policy = objs.find((o) => o.kind === 'AuthorizationPolicy')!;
    const provider = operator.spec.meshConfig.extensionProviders[0];
    expect(provider.envoyExtAuthzGrpc).toMatchObject({ service: 'verdict.verdict-system.svc.cluster.local', port: 9191, failOpen: false });
    expect(objs.find((o) => o.kind === 'Service')!.metadata.name).toBe('verdict');
    expect(policy.spec).toMatchObject({
      action: 'CUSTOM',
      provider: { name: provider.name },
      selector: { matchLabels: { app: 'orders' } },
    });
  });
});

describe('helm chart: values and committed files', () => {
  const values = parse(readFileSync(join(chart, 'values.yaml'), 'utf8')) as { config: Record<string, unknown> };
  // The chart's deliberate departures from the schema's defaults (each marked "chart:" in values.yaml).
  const CHART_CHOICES: Record<string, unknown> = { 'server.grpc.host': '0.0.0.0', 'server.http.host': '0.0.0.0', 'server.workers': 1 };

  function leaves(o: unknown, prefix = ''): [string, unknown][] {
    if (o === null || typeof o !== 'object' || Array.isArray(o)) return [[prefix, o]];
    return Object.entries(o).flatMap(([k, v]) => leaves(v, prefix ? `${prefix}.${k}` : k));
  }
  const get = (o: unknown, path: string): unknown =>
    path.split('.').reduce<unknown>((acc, k) => (acc as Record<string, unknown> | undefined)?.[k], o);

  it("values.config is verdict's schema defaults except the chart's marked choices", () => {
    const defaults = configSchema.parse({});
    validateConfig(values.config);
    for (const [path, value] of leaves(values.config)) {
      expect(value, path).toEqual(path in CHART_CHOICES ? CHART_CHOICES[path] : get(defaults, path));
    }
  });

  it('ships the promtool-tested rules unchanged inside the chart', () => {
    expect(readFileSync(join(chart, 'files', 'verdict-rules.yaml'), 'utf8')).toBe(
      readFileSync(join(root, 'deploy', 'prometheus', 'verdict-rules.yaml'), 'utf8'),
    );
  });

  it.each([
    ['verdict-deployment.yaml', [] as string[]],
    ['verdict-daemonset.yaml', ['-f', join(chart, 'ci', 'daemonset-values.yaml')]],
  ])('deploy/kubernetes/%s is the chart rendered (scripts/render-manifests.sh)', async (file, args) => {
    const committed = readFileSync(join(root, 'deploy', 'kubernetes', file), 'utf8');
    expect(committed.split('\n').slice(1).join('\n')).toBe(await render(args));
  });
});
