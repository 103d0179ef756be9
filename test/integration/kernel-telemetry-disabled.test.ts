import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load-config';
import { packageRoot } from '../../src/package-root';
import { createLogger } from '../../src/telemetry/logger';
import { logSink } from '../helpers/log-sink';
import { checkClient, httpCheckRequest, startTestVerdict } from '../helpers/verdict-harness';

describe('kernel telemetry off: one log line, a metric, everything else works', () => {
  const cases = [
    { name: 'disabled in config (the default)', overrides: [], reason: 'DISABLED_IN_CONFIG', level: 'info' },
    {
      name: 'enabled, but the cgroup does not exist',
      overrides: [
        'kernelTelemetry.enabled=true',
        'kernelTelemetry.cgroupPath=/sys/fs/cgroup/unified/verdict-no-such-group',
        'kernelTelemetry.pinPath=null',
      ],
      reason: 'CGROUP_MISSING',
      level: 'warn',
    },
    {
      name: 'enabled in a cluster worker (drift needs every decision in one process)',
      overrides: ['kernelTelemetry.enabled=true', 'kernelTelemetry.cgroupPath=/sys/fs/cgroup/unified', 'server.workerSlot=0'],
      reason: 'CLUSTER_MODE',
      level: 'warn',
    },
  ];
  it.each(cases)('$name', async ({ overrides, reason, level }) => {
    const sink = logSink();
    const verdict = await startTestVerdict([...overrides, 'log.level=info'], { logger: createLogger('info', sink.stream) });
    const client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
    try {
      expect(verdict.kernelTelemetry.status()).toMatchObject({ enabled: false, reason });
      expect(verdict.kernelTelemetry.observer).toBeNull();
      const off = sink.lines.filter((l) => l.msg.startsWith('kernel telemetry off'));
      expect(off).toHaveLength(1);
      expect(off[0]).toMatchObject({ level, reason });
      const text = await (await fetch(`http://127.0.0.1:${verdict.httpPort}/metrics`)).text();
      expect(text).toContain(`verdict_kernel_telemetry_enabled{reason="${reason}"} 0`);
      expect(text).not.toContain('verdict_kernel_connect_attempts_total{');
      const res = await client.check(httpCheckRequest({ path: '/healthz' }));
      expect(res.status?.code ?? 0).toBe(0);
    } finally {
      client.close();
      await verdict.stop();
    }
  });

  it('kernelTelemetry.required turns unavailable telemetry into a start failure', async () => {
    const start = startTestVerdict([
      'kernelTelemetry.enabled=true',
      'kernelTelemetry.required=true',
      'kernelTelemetry.cgroupPath=/nonexistent',
    ]);
    await expect(start).rejects.toMatchObject({ code: 'ERR_KERNEL_TELEMETRY_UNAVAILABLE' });
  });

  const invalid = [
    { name: 'enabled without a cgroup', file: { kernelTelemetry: { enabled: true } } },
    {
      name: 'an identity row with both spiffeId and sourceAddress',
      file: { kernelTelemetry: { identities: [{ cgroupPath: '/a', spiffeId: 'spiffe://t/a', sourceAddress: '10.0.0.1' }] } },
    },
    { name: 'an identity row with neither', file: { kernelTelemetry: { identities: [{ cgroupPath: '/a' }] } } },
    {
      name: 'a spiffeId that is not a SPIFFE ID',
      file: { kernelTelemetry: { identities: [{ cgroupPath: '/a', spiffeId: 'https://x' }] } },
    },
    { name: 'a kernel map bound past its maximum', file: { kernelTelemetry: { maxEntries: 2_000_000 } } },
  ];
  it.each(invalid)('config error: $name', async ({ file }) => {
    const { validateConfig } = await import('../../src/config/load-config');
    expect(() => validateConfig(file)).toThrow(expect.objectContaining({ code: 'ERR_CONFIG' }));
  });

  it('off by default: the default config has it disabled', () => {
    expect(loadConfig({}).kernelTelemetry).toMatchObject({ enabled: false, identities: [] });
  });

  it('as a non-root user it is off with NOT_ROOT (real setuid child)', () => {
    // Runs the built module as uid 65534: the only way to get a real non-root process in a root CI job.
    const dist = (p: string): string => JSON.stringify(join(packageRoot(), 'dist', 'src', p));
    const script = `
      const { startKernelTelemetry } = require(${dist('kerneltelemetry/kernel-telemetry.js')});
      const { Metrics } = require(${dist('telemetry/metrics.js')});
      const { configSchema } = require(${dist('config/schema.js')});
      const lines = [];
      const logger = { info: (o, m) => lines.push(m), warn: (o, m) => lines.push(m), debug() {}, error() {} };
      const metrics = new Metrics({ defaultMetrics: false });
      const settings = { ...configSchema.parse({}).kernelTelemetry, enabled: true, cgroupPath: '/sys/fs/cgroup/unified', pinPath: null };
      const kt = startKernelTelemetry(settings, { clock: { nowMs: Date.now, monotonicNs: process.hrtime.bigint }, logger, metrics,
        decisionLog: { emit() {}, async close() {} }, workerSlot: null });
      metrics.registry.metrics().then((text) => process.stdout.write(JSON.stringify({ status: kt.status(), lines, metric: text.includes('verdict_kernel_telemetry_enabled{reason="NOT_ROOT"} 0') })));`;
    const r = spawnSync(process.execPath, ['-e', script], { uid: 65534, gid: 65534, encoding: 'utf8', cwd: '/' });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { status: { enabled: boolean; reason: string }; lines: string[]; metric: boolean };
    expect(out.status).toMatchObject({ enabled: false, reason: 'NOT_ROOT' });
    expect(out.lines).toEqual(['kernel telemetry off: loading BPF programs needs root']);
    expect(out.metric).toBe(true);
  });
});
