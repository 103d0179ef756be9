import { Counter, Gauge, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { formatReport, telemetryReport } from '../../../src/kerneltelemetry/telemetry-report';

// The report reads what prom-client writes: the text comes from a real registry, not a hand-written sample.
async function metricsText(withDelegated: boolean): Promise<string> {
  const registry = new Registry();
  const unexplained = new Counter({
    name: 'verdict_kernel_unexplained_connections_total',
    help: 'h',
    labelNames: ['spiffe_id'],
    registers: [registry],
  });
  unexplained.inc({ spiffe_id: 'spiffe://td/a' }, 3);
  if (withDelegated) {
    const cgroups = new Gauge({ name: 'verdict_kernel_identity_cgroups', help: 'h', labelNames: ['state'], registers: [registry] });
    cgroups.set({ state: 'bound' }, 2);
    cgroups.set({ state: 'ambiguous' }, 1);
    const errors = new Counter({
      name: 'verdict_kernel_identity_stream_errors_total',
      help: 'h',
      labelNames: ['code'],
      registers: [registry],
    });
    errors.inc({ code: 'ERR_DELEGATED_IDENTITY_REFUSED' }, 4);
  }
  return registry.metrics();
}

describe('verdict fastpath telemetry report', () => {
  it('reports the Delegated Identity binding (cgroups by state, ended streams by code) when it is configured', async () => {
    const report = telemetryReport(await metricsText(true));
    expect(report.delegatedIdentity).toEqual({ cgroups: { bound: 2, ambiguous: 1 }, streamErrors: { ERR_DELEGATED_IDENTITY_REFUSED: 4 } });
    expect(formatReport(report, 5)).toContain(
      'delegated identity (SPIRE agent): cgroups bound=2 ambiguous=1; ended streams ERR_DELEGATED_IDENTITY_REFUSED=4\n',
    );
  });

  it('says nothing about it when it is not configured', async () => {
    const report = telemetryReport(await metricsText(false));
    expect(report.delegatedIdentity).toBeNull();
    expect(report.unexplained).toEqual([{ spiffeId: 'spiffe://td/a', connections: 3 }]);
    expect(formatReport(report, 5)).not.toContain('delegated identity');
  });
});
