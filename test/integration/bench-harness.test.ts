import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/package-root';

// The benchmark harness must not rot: a short `npm run bench -- --only core` drives the built verdict with
// the real ghz and writes a results file whose numbers are sane. (Speed targets are the bench's business,
// not this test's: it checks the harness produced measurements, not what they are.)

interface GhzRow {
  scenario?: string;
  workers?: number;
  count: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
}

describe('benchmark harness (smoke)', () => {
  it('runs the core scenarios end to end and records sane numbers with machine info', async () => {
    const root = packageRoot();
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [
        '--expose-gc',
        join(root, 'dist', 'loadtest', 'bench.js'),
        '--only',
        'core',
        '--seconds',
        '2',
        '--memory-calls',
        '2000',
        '--fixed-rps',
        '300',
      ],
      { cwd: root, maxBuffer: 16 * 1024 * 1024, timeout: 170_000 },
    );
    const file = /results: (\S+\.json)/.exec(stdout)?.[1];
    expect(file, stdout).toBeDefined();
    const results = JSON.parse(readFileSync(file!, 'utf8')) as {
      machine: { cpus: number; node: string };
      core: { inProcess: Record<string, number>; grpc: GhzRow[]; scaling: GhzRow[] };
    };
    expect(results.machine.cpus).toBeGreaterThan(0);
    expect(results.machine.node).toBe(process.version);
    expect(results.core.inProcess.calls).toBe(2000);
    expect(results.core.inProcess['opa eval p50 µs']).toBeGreaterThan(0);
    expect(results.core.grpc.map((r) => r.scenario)).toEqual(['fixed 300/s', 'saturation']);
    expect(results.core.scaling.map((r) => r.workers)).toEqual([1, 2]);
    for (const row of [...results.core.grpc, ...results.core.scaling]) {
      expect(row.count).toBeGreaterThan(100); // ghz leaves out the first 200 calls (warm-up)
      expect(row.rps).toBeGreaterThan(50);
      expect(row.p50Ms).toBeGreaterThan(0);
      expect(row.p99Ms).toBeGreaterThanOrEqual(row.p50Ms);
    }
  }, 180_000);
});
