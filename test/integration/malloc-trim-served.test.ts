import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { VerdictChild } from '../helpers/verdict-child';

// A served process runs the trim on its own (the built addon, through `verdict serve`'s start), with no
// start-up line about it: the default build has the addon, so a first start is clean.
describe('verdict serve trims freed malloc memory', () => {
  let verdict: VerdictChild;
  beforeAll(async () => {
    verdict = await VerdictChild.start(['server.mallocTrimIntervalMs=20']);
  });
  afterAll(async () => {
    await verdict.stop();
  });

  it('counts trims in /metrics and logs nothing about them', async () => {
    await vi.waitFor(async () => expect(await verdict.metrics()).toMatch(/^verdict_malloc_trims_total\{released="(true|false)"\} [1-9]/m), {
      timeout: 10_000,
      interval: 50,
    });
    expect(verdict.lines.filter((l) => String(l.msg).includes('malloc trim'))).toEqual([]);
  });
});
