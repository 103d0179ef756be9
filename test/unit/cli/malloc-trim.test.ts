import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadMallocTrim, mallocTrimAddonPath, startMallocTrim, type MallocTrimAddon } from '../../../src/cli/malloc-trim';
import type { Config } from '../../../src/config/schema';
import { Metrics } from '../../../src/telemetry/metrics';
import { recordingLogger } from '../../helpers/recording-logger';

// The addon (native/malloc-trim.c) really gives freed heap memory back: a child process fills glibc's heap
// with 8 KiB native buffers, keeps every 64th (so the free memory lies between live blocks, where glibc does
// not return it by itself), lets a full GC free the rest, and reports its resident heap before and after
// trim(). Its own process, so no other test's allocations are in the figures.
const CHILD = `
const { readFileSync } = require('node:fs');
const addon = require(${JSON.stringify(mallocTrimAddonPath())});
const resident = () => readFileSync('/proc/self/smaps', 'utf8').split(/\\n(?=[0-9a-f]+-[0-9a-f]+ )/)
  .filter((m) => / \\[heap\\]$| 0 +$/m.test(m.split('\\n')[0]))
  .reduce((kib, m) => kib + Number(/^Rss:\\s+(\\d+)/m.exec(m)[1]), 0) / 1024;
(async () => {
  let all = [];
  for (let i = 0; i < 12800; i++) all.push(Buffer.allocUnsafeSlow(8192).fill(1));
  const kept = all.filter((_, i) => i % 64 === 63);
  all = null;
  for (let i = 0; i < 3; i++) { gc(); await new Promise((r) => setImmediate(r)); }
  const before = resident();
  const released = await addon.trim();
  process.stdout.write(JSON.stringify({ before, after: resident(), released, kept: kept.length }));
})();
`;

const config = (mallocTrimIntervalMs: number): Config => ({ server: { mallocTrimIntervalMs } }) as Config;

afterEach(() => {
  vi.useRealTimers();
});

describe('malloc trim', () => {
  it('the addon returns ~100 MB freed between live blocks to the kernel', () => {
    const out = execFileSync(process.execPath, ['--expose-gc', '--single-threaded-gc', '-e', CHILD], { encoding: 'utf8' });
    const { before, after, released, kept } = JSON.parse(out) as { before: number; after: number; released: boolean; kept: number };
    expect(kept).toBe(200);
    expect(released).toBe(true);
    // 12,600 of 12,800 8 KiB buffers freed: ~98 MiB that stayed resident until the trim.
    expect(before - after).toBeGreaterThan(60);
  });

  it('runs one trim at a time every interval and counts each by its outcome', async () => {
    vi.useFakeTimers();
    const pending: ((released: boolean) => void)[] = [];
    const addon: MallocTrimAddon = { trim: () => new Promise((resolve) => pending.push(resolve)) };
    const metrics = new Metrics({ defaultMetrics: false });
    const stop = startMallocTrim(config(1000), recordingLogger().logger, metrics, { addon });
    await vi.advanceTimersByTimeAsync(3000);
    expect(pending).toHaveLength(1); // the first has not finished: no second one queued behind it
    pending[0]!(true);
    await vi.advanceTimersByTimeAsync(1000);
    pending[1]!(false);
    await vi.advanceTimersByTimeAsync(0);
    stop();
    await vi.advanceTimersByTimeAsync(5000);
    expect(pending).toHaveLength(2);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/verdict_malloc_trims_total\{released="true"\} 1/);
    expect(text).toMatch(/verdict_malloc_trims_total\{released="false"\} 1/);
  });

  it('stops and says so when a trim fails (a fault the real addon cannot be made to produce)', async () => {
    vi.useFakeTimers();
    let calls = 0;
    const addon: MallocTrimAddon = { trim: () => (calls++, Promise.reject(new Error('malloc_trim did not run'))) };
    const { logger, lines } = recordingLogger();
    startMallocTrim(config(100), logger, new Metrics({ defaultMetrics: false }), { addon });
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls).toBe(1);
    expect(lines).toEqual([{ level: 'warn', fields: { err: { message: 'malloc_trim did not run' } }, msg: 'malloc trim failed; stopped' }]);
  });

  it('says why it is off when the addon is not there, and is silent at interval 0', async () => {
    vi.useFakeTimers();
    const missing = loadMallocTrim('/nonexistent/malloc_trim.node');
    expect(missing).toEqual({ reason: 'native addon /nonexistent/malloc_trim.node is not built (npm run build:native)' });
    const { logger, lines } = recordingLogger();
    startMallocTrim(config(100), logger, new Metrics({ defaultMetrics: false }), missing);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'info', fields: missing });
    let calls = 0;
    startMallocTrim(config(0), logger, new Metrics({ defaultMetrics: false }), { addon: { trim: () => (calls++, Promise.resolve(true)) } });
    await vi.advanceTimersByTimeAsync(10_000);
    expect(calls).toBe(0);
    expect(lines).toHaveLength(1);
  });
});
