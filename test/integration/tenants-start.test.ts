import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { defaultBundlePath } from '../../src/package-root';
import { MAX_CONCURRENT_LOADS } from '../../src/policy/load-slots';
import { startVerdictFromDocument } from '../helpers/verdict-from-document';

// Many tenants start together. Each load is a bundle worker and an engine load worker (threads with their own
// heaps): 300 tenants ran 300 of each at once, 1.85 GiB of peak RSS here against 357 MiB once loaded.

/**
 * Counts this process's threads (/proc/self/task) from a thread of its own, about every millisecond, while
 * the event loop is busy loading: the peak is what matters, and the event loop cannot sample its own peak.
 */
function threadSampler(): { stop(): Promise<{ first: number; max: number }> } {
  const shared = new Int32Array(new SharedArrayBuffer(12)); // [stop, first, max]
  const worker = new Worker(
    `const { workerData } = require('node:worker_threads');
     const { readdirSync } = require('node:fs');
     const s = new Int32Array(workerData);
     const count = () => readdirSync('/proc/self/task').length;
     Atomics.store(s, 1, count());
     while (Atomics.load(s, 0) === 0) {
       const n = count();
       if (n > Atomics.load(s, 2)) Atomics.store(s, 2, n);
       Atomics.wait(s, 0, 0, 1);
     }`,
    { eval: true, workerData: shared.buffer },
  );
  return {
    async stop() {
      Atomics.store(shared, 0, 1);
      Atomics.notify(shared, 0);
      await new Promise((resolve) => worker.once('exit', resolve));
      return { first: shared[1]!, max: shared[2]! };
    },
  };
}

function tenantList(n: number): Record<string, unknown>[] {
  return Array.from({ length: n }, (_, i) => ({
    name: `t${i}`,
    match: [`t${i}`],
    bundles: { source: { type: 'file', path: defaultBundlePath() } },
  }));
}

describe('tenants starting together', () => {
  it(`load at most ${MAX_CONCURRENT_LOADS} bundles at once, however many tenants there are`, async () => {
    const list = tenantList(48);
    const sampler = threadSampler();
    const verdict = await startVerdictFromDocument({
      tenants: { selector: { from: 'contextExtension', key: 'tenant' }, list },
    });
    try {
      await Promise.all([...verdict.tenants!.tenants.values()].map((t) => t.started));
      expect([...verdict.tenants!.tenants.values()].every((t) => t.policy.current !== null)).toBe(true);
    } finally {
      const { first, max } = await sampler.stop();
      await verdict.stop();
      // A bundle worker and an engine load worker per load in flight, plus those being torn down; before,
      // every tenant had both at once (48 tenants: ~100 threads more).
      expect(max - first).toBeLessThanOrEqual(3 * MAX_CONCURRENT_LOADS);
    }
  }, 120_000);

  it('a stop does not wait for the tenants still queued to load: they never load', async () => {
    const n = 48;
    const verdict = await startVerdictFromDocument({
      tenants: { selector: { from: 'contextExtension', key: 'tenant' }, list: tenantList(n) },
    });
    const tenants = [...verdict.tenants!.tenants.values()];
    await verdict.stop();
    // Before, each queued tenant took its turn to load a bundle nobody would use before the stop returned.
    expect(tenants.filter((t) => t.policy.current !== null).length).toBeLessThan(n);
  }, 120_000);
});
