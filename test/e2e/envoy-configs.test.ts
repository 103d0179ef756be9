import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuthorizationPolicy } from '@kubernetes-models/istio/security.istio.io/v1';
import { IstioOperator } from '@kubernetes-models/istio/install.istio.io/v1alpha1';
import { parseAllDocuments } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { mintTestPKI, type TestPKI } from '../helpers/envoy-certs';
import { validateEnvoyConfig } from '../helpers/envoy-process';
import { renderEnvoyConfigFile, renderEnvoyTemplate } from '../helpers/envoy-template';
import { envoyConfig } from '../helpers/envoy-stack';
import { tempDir } from '../helpers/verdict-harness';

// Every committed Envoy config passes `envoy --mode validate` (rendered with run-time ports and certs),
// and the Istio examples pass the Istio CRD schemas shipped in @kubernetes-models/istio.

/** Model#validate() (ajv against the CRD schema) comes from @kubernetes-models/base, whose types this setup does not resolve. */
function schemaCheck(model: object): void {
  (model as { validate(): void }).validate();
}

const CONFIGS = readdirSync(envoyConfig('')).filter((f) => f.endsWith('.yaml'));

describe('committed Envoy configs', () => {
  let pki: TestPKI;
  beforeAll(() => {
    pki = mintTestPKI(tempDir('verdict-pki-'));
  });

  it('covers every scenario', () => {
    expect(CONFIGS.sort()).toEqual([
      'fastpath-l4.yaml',
      'fleet-grpc.yaml',
      'http-mode.yaml',
      'mtls-spire-sds.yaml',
      'mtls.yaml',
      'network-l4.yaml',
      'sidecar-grpc.yaml',
      'tracing-otel.yaml',
    ]);
  });

  it.each(CONFIGS)('%s passes envoy --mode validate once rendered', async (name) => {
    const text = readFileSync(envoyConfig(name), 'utf8');
    const all: Record<string, string | number> = {
      ADMIN_PORT: 0,
      LISTENER_PORT: 0,
      APP_PORT: 18080,
      VERDICT_PORT: 19191,
      VERDICT_PORT_A: 19191,
      VERDICT_PORT_B: 19192,
      VERDICT_PORT_C: 19193,
      HC_INTERVAL: '0.5s',
      PER_TRY_TIMEOUT: '0.3s',
      HC_NO_TRAFFIC_INTERVAL: '0.5s',
      VERDICT_HTTP_PORT: 19292,
      AUTHZ_TIMEOUT: '1s',
      CA_CERT: pki.ca.certFile,
      ENVOY_CERT: pki.envoy.certFile,
      ENVOY_KEY: pki.envoy.keyFile,
      ENVOY_SPIFFE_ID: 'spiffe://example.org/ns/default/sa/envoy',
      TRUST_DOMAIN_ID: 'spiffe://example.org',
      SPIRE_AGENT_SOCKET: join(pki.dir, 'agent.sock'),
      OTLP_PORT: 14318,
    };
    const vars = Object.fromEntries(Object.entries(all).filter(([k]) => new RegExp(`template: ${k}\\b`).test(text)));
    await validateEnvoyConfig(renderEnvoyConfigFile(envoyConfig(name), tempDir('verdict-envoy-'), vars));
  });
});

describe('Envoy template renderer', () => {
  const cases = [
    { name: 'replaces a marked scalar', text: 'port_value: 1 # template: P', vars: { P: 2 }, out: 'port_value: 2 # template: P' },
    { name: 'quotes strings', text: 'timeout: 1s # template: T', vars: { T: '2s' }, out: 'timeout: "2s" # template: T' },
    {
      name: 'replaces inside a one-key flow mapping',
      text: '- certificate_chain: { filename: /a.pem } # template: C',
      vars: { C: '/b.pem' },
      out: '- certificate_chain: { filename: "/b.pem" } # template: C',
    },
    { name: 'leaves comment lines alone', text: '# see "# template: NAME"', vars: {}, out: '# see "# template: NAME"' },
  ];
  it.each(cases)('$name', ({ text, vars, out }) => expect(renderEnvoyTemplate(text, vars)).toBe(out));

  it('refuses a marker with no value and an unused variable', () => {
    expect(() => renderEnvoyTemplate('port_value: 1 # template: P', {})).toThrow(/P .*has no value/);
    expect(() => renderEnvoyTemplate('port_value: 1', { P: 2 })).toThrow(/never used: P/);
  });
});

describe('Istio examples', () => {
  function docs(name: string): Record<string, unknown>[] {
    return parseAllDocuments(readFileSync(envoyConfig(join('istio', name)), 'utf8')).map((d) => d.toJS() as Record<string, unknown>);
  }

  it('mesh-config.yaml registers verdict providers that fail closed (IstioOperator schema)', () => {
    const [op] = docs('mesh-config.yaml');
    schemaCheck(new IstioOperator(op as never));
    const providers = (op as { spec: { meshConfig: { extensionProviders: Record<string, Record<string, unknown>>[] } } }).spec.meshConfig
      .extensionProviders;
    const grpc = providers.find((p) => p.envoyExtAuthzGrpc)?.envoyExtAuthzGrpc;
    const http = providers.find((p) => p.envoyExtAuthzHttp)?.envoyExtAuthzHttp;
    expect(grpc).toMatchObject({ port: 9191, failOpen: false });
    expect(http).toMatchObject({ port: 9292, failOpen: false, pathPrefix: '/authz' });
    expect(typeof grpc?.service).toBe('string');
  });

  it('authorization-policy.yaml: CUSTOM policies naming a declared provider (AuthorizationPolicy schema)', () => {
    const [op] = docs('mesh-config.yaml');
    const names = (op as { spec: { meshConfig: { extensionProviders: { name: string }[] } } }).spec.meshConfig.extensionProviders.map(
      (p) => p.name,
    );
    const policies = docs('authorization-policy.yaml');
    expect(policies.length).toBe(2);
    for (const p of policies) {
      schemaCheck(new AuthorizationPolicy(p as never));
      const spec = (p as { spec: { action: string; provider: { name: string } } }).spec;
      expect(spec.action).toBe('CUSTOM');
      expect(names).toContain(spec.provider.name);
    }
  });

  it('the schema check catches a bad resource', () => {
    const bad = { ...docs('authorization-policy.yaml')[0], spec: { action: 'MAYBE' } };
    expect(() => schemaCheck(new AuthorizationPolicy(bad as never))).toThrow();
  });
});
