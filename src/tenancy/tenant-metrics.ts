import { Counter, Gauge, type Registry } from 'prom-client';

/** Per-tenant metrics (the tenant is a label), registered on the instance's registry. */
export class TenantMetrics {
  readonly decisions: Counter<'tenant' | 'result' | 'reason'>;
  readonly bundleInfo: Gauge<'tenant' | 'name' | 'revision' | 'sha256' | 'engine'>;
  readonly bundleLoads: Counter<'tenant' | 'outcome' | 'reason'>;
  readonly tenants: Gauge<'state'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.decisions = new Counter({
      name: 'verdict_tenant_decisions_total',
      help: "Decisions made with a tenant's bundle, by tenant, result and reason code.",
      labelNames: ['tenant', 'result', 'reason'] as const,
      registers,
    });
    this.bundleInfo = new Gauge({
      name: 'verdict_tenant_bundle_info',
      aggregator: 'max',
      help: "Each tenant's active bundle (value 1).",
      labelNames: ['tenant', 'name', 'revision', 'sha256', 'engine'] as const,
      registers,
    });
    this.bundleLoads = new Counter({
      name: 'verdict_tenant_bundle_loads_total',
      help: 'Tenant bundle activations attempted, by tenant, outcome and reason code.',
      labelNames: ['tenant', 'outcome', 'reason'] as const,
      registers,
    });
    this.tenants = new Gauge({
      name: 'verdict_tenants',
      aggregator: 'max',
      help: 'Configured tenants, by state (serving: a bundle is active; waiting: none yet).',
      labelNames: ['state'] as const,
      registers,
    });
  }
}
