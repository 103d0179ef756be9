import { describe, expect, it } from 'vitest';
import { launcherDefaults, parseTraceGcNvp, variantsFrom } from '../../../loadtest/bench-gc';
import { packageRoot } from '../../../src/package-root';

// Two lines as V8 11.3 prints them with --trace-gc-nvp (shortened), with a line of another kind between.
const TRACE = [
  '{"port":4321}',
  '[11:0x1a]     8219 ms: pause=5.8 mutator=81.2 gc=s reduce_memory=0 scavenge=5.1 promoted=466456 promotion_rate=93.7%',
  'unrelated output',
  '[11:0x1a]     9000 ms: pause=14.3 mutator=4.9 gc=mc clear=10 clear.external_string_table=9.6 evacuate=2.9 evacuate.copy=2.2',
].join('\n');

describe('bench-gc', () => {
  it('reads the kind and every name=value of each --trace-gc-nvp line, skipping other output', () => {
    const gcs = parseTraceGcNvp(TRACE);
    expect(gcs.map((g) => g.kind)).toEqual(['s', 'mc']);
    expect(gcs[0]!.fields).toMatchObject({ pause: 5.8, promoted: 466456, promotion_rate: 93.7 });
    expect(gcs[1]!.fields).toMatchObject({ pause: 14.3, 'clear.external_string_table': 9.6, evacuate: 2.9, 'evacuate.copy': 2.2 });
  });

  it('maps variant names to servers, launcher flags and verdict settings, and refuses names it does not know', () => {
    const [hit, echo, semi] = variantsFrom(['hit', 'echo-parallel-gc'], ['uncached-semi8=--max-semi-space-size=8'], null);
    expect(hit).toMatchObject({ kind: 'hit', launcherFlags: true, extraFlags: [] });
    expect(echo).toMatchObject({ kind: 'echo', launcherFlags: false });
    expect(semi).toMatchObject({ name: 'uncached-semi8', kind: 'uncached', launcherFlags: true, extraFlags: ['--max-semi-space-size=8'] });
    const [, , , m0] = variantsFrom(['hit', 'echo-parallel-gc'], ['uncached-semi8=--max-semi-space-size=8'], null, [
      'hit-m0=server.gcMarkingEveryChecks=0 cache.maxEntries=10',
    ]);
    expect(m0).toMatchObject({
      name: 'hit-m0',
      kind: 'hit',
      extraFlags: [],
      sets: ['server.gcMarkingEveryChecks=0', 'cache.maxEntries=10'],
    });
    expect(hit!.sets).toEqual([]);
    expect(() => variantsFrom(['grpcjs'], [], null)).toThrow(/unknown variant grpcjs/);
    // A listed name must be a built-in one exactly: with a suffix it would run as plain `hit` under another name.
    expect(() => variantsFrom(['hit-pool1'], [], null)).toThrow(/unknown variant hit-pool1/);
    expect(variantsFrom([], ['hit-pool1=--v8-pool-size=1'], null)[0]).toMatchObject({ kind: 'hit', extraFlags: ['--v8-pool-size=1'] });
    expect(() => variantsFrom(['before-hit'], [], null)).toThrow(/needs --before/);
  });

  it("starts servers with bin/verdict's own defaults, read from the launcher", () => {
    const d = launcherDefaults(packageRoot());
    expect(d.flags).toEqual(['--single-threaded-gc', '--v8-pool-size=1']);
    expect(d.env.NODE_OPTIONS).toBe('--max-semi-space-size=2');
    expect(d.env.GLIBC_TUNABLES).toContain('glibc.malloc.arena_max=2');
  });
});
