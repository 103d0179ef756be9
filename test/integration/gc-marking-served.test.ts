import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { VerdictChild } from '../helpers/verdict-child';
import { checkClient, httpCheckRequest, type CheckClient } from '../helpers/verdict-harness';

// A served process counts the Checks it receives and, every server.gcMarkingEveryChecks of them on an idle
// loop, asks V8 to start marking (the built addon, through `verdict serve`'s start), with no start-up line.
describe('verdict serve bounds the Checks between full GCs', () => {
  let verdict: VerdictChild;
  let client: CheckClient;
  beforeAll(async () => {
    verdict = await VerdictChild.start(['server.gcMarkingEveryChecks=20']);
    client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
  });
  afterAll(async () => {
    client.close();
    await verdict.stop();
  });

  const starts = async (): Promise<number> => Number(/^verdict_gc_marking_starts_total (\d+)/m.exec(await verdict.metrics())?.[1]);

  it('starts marking after N Checks, not before, and logs nothing about it', async () => {
    for (let i = 0; i < 10; i++) await client.check(httpCheckRequest({ path: `/few/${i}` }));
    // Ten Checks, half of N: ten ticks of the cadence pass (the metric is read after each) without a start.
    for (let tick = 0; tick < 10; tick++) {
      expect(await starts()).toBe(0);
      await new Promise((r) => setTimeout(r, 100));
    }
    for (let i = 0; i < 30; i++) await client.check(httpCheckRequest({ path: `/more/${i}` }));
    // 40 Checks, 2 N: one start, or two when a tick fell between the 20th and the 40th.
    await vi.waitFor(async () => expect(await starts()).toBeGreaterThanOrEqual(1), { timeout: 10_000, interval: 50 });
    expect(await starts()).toBeLessThanOrEqual(2);
    expect(verdict.lines.filter((l) => String(l.msg).includes('GC marking'))).toEqual([]);
  });
});
