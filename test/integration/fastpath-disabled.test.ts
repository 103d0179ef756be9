import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load-config';
import { packageRoot } from '../../src/package-root';
import { createLogger } from '../../src/telemetry/logger';
import { logSink } from '../helpers/log-sink';
import { checkClient, httpCheckRequest, startTestVerdict } from '../helpers/verdict-harness';

/** A cgroup v1 hierarchy (this CI machine mounts the v1 controllers beside cgroup2 at /sys/fs/cgroup/unified). */
const CGROUP_V1_CPU = '/sys/fs/cgroup/cpu';

describe('fast path off: everything else works', () => {
  const cases = [
    { name: 'disabled in config (the default)', overrides: [], reason: 'DISABLED_IN_CONFIG', level: 'info' },
    {
      name: 'enabled, but the cgroup does not exist',
      overrides: ['fastpath.enabled=true', 'fastpath.cgroupPath=/sys/fs/cgroup/unified/verdict-no-such-group', 'fastpath.pinPath=null'],
      reason: 'CGROUP_MISSING',
      level: 'warn',
    },
  ];
  it.each(cases)('$name: one log line, a metric, and Check still answers', async ({ overrides, reason, level }) => {
    const sink = logSink();
    const verdict = await startTestVerdict([...overrides, 'log.level=info'], { logger: createLogger('info', sink.stream) });
    const client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
    try {
      expect(verdict.fastpath.status()).toMatchObject({ enabled: false, reason });
      expect(verdict.fastpath.observer).toBeNull();
      const off = sink.lines.filter((l) => l.msg.startsWith('fast path off'));
      expect(off).toHaveLength(1);
      expect(off[0]).toMatchObject({ level, reason });
      expect(await verdict.metrics.registry.metrics()).toContain(`verdict_fastpath_enabled{reason="${reason}"} 0`);
      const res = await client.check(httpCheckRequest({ path: '/' }));
      expect(res.status).toBeDefined();
    } finally {
      client.close();
      await verdict.stop();
    }
  });

  it('enabled on a cgroup v1 group: off with CGROUP_MISSING, the detail saying its filesystem is not cgroup2, and Check still answers', async () => {
    const v1 = join(CGROUP_V1_CPU, `verdict-test-v1-${process.pid}`);
    if (!existsSync(join(CGROUP_V1_CPU, 'cgroup.procs'))) throw new Error(`no cgroup v1 hierarchy at ${CGROUP_V1_CPU} for this test`);
    mkdirSync(v1);
    try {
      const verdict = await startTestVerdict(['fastpath.enabled=true', `fastpath.cgroupPath=${v1}`, 'fastpath.pinPath=null']);
      const client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
      try {
        expect(verdict.fastpath.status()).toEqual({
          enabled: false,
          reason: 'CGROUP_MISSING',
          detail: `${v1} is not a cgroup v2 group: its filesystem is not cgroup2 (statfs type 0x27e0eb; a cgroup v1 hierarchy?)`,
        });
        expect((await client.check(httpCheckRequest({ path: '/' }))).status).toBeDefined();
      } finally {
        client.close();
        await verdict.stop();
      }
    } finally {
      rmdirSync(v1);
    }
  });

  it('fastpath.required turns an unavailable fast path into a start failure', async () => {
    const start = startTestVerdict([
      'fastpath.enabled=true',
      'fastpath.required=true',
      'fastpath.cgroupPath=/nonexistent',
      'fastpath.pinPath=null',
    ]);
    await expect(start).rejects.toMatchObject({ code: 'ERR_FASTPATH_UNAVAILABLE' });
  });

  it('enabling without a cgroup is a config error', () => {
    expect(() => loadConfig({ overrides: ['fastpath.enabled=true'] })).toThrow(expect.objectContaining({ code: 'ERR_CONFIG' }));
  });

  it('as a non-root user the fast path is off with NOT_ROOT (real setuid child)', () => {
    // Runs the built fast path as uid 65534: the only way to get a real non-root process in a root CI job.
    const script = `
      const { startFastpath } = require(${JSON.stringify(join(packageRoot(), 'dist', 'src', 'fastpath', 'fastpath.js'))});
      const { Metrics } = require(${JSON.stringify(join(packageRoot(), 'dist', 'src', 'telemetry', 'metrics.js'))});
      const lines = [];
      const logger = { info: (o, m) => lines.push(m), warn: (o, m) => lines.push(m), debug() {}, error() {} };
      const fp = startFastpath({ enabled: true, cgroupPath: '/sys/fs/cgroup/unified', pinPath: null, required: false, hotHits: 3, hotWindowMs: 1000,
        maxEntries: 16, maxTracked: 16, maxEntryTtlMs: 1000, batchSize: 16 }, { clock: { nowMs: Date.now, monotonicNs: process.hrtime.bigint }, logger, metrics: new Metrics({ defaultMetrics: false }) });
      process.stdout.write(JSON.stringify({ status: fp.status(), lines }));`;
    const r = spawnSync(process.execPath, ['-e', script], { uid: 65534, gid: 65534, encoding: 'utf8', cwd: '/' });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { status: { enabled: boolean; reason: string }; lines: string[] };
    expect(out.status).toMatchObject({ enabled: false, reason: 'NOT_ROOT' });
    expect(out.lines).toEqual(['fast path off: loading BPF programs needs root']);
  });
});
