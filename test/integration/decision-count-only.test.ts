import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Decision } from '../../src/decision/decision';
import type { DecisionLog, DecisionRecord } from '../../src/decisionlog/decision-record';
import type { RunningVerdict } from '../../src/main';
import { checkClient, httpCheckRequest, startTestVerdict, type CheckClient } from '../helpers/verdict-harness';

/** A log that only counts (as with no sink): it offers count(), and records what reaches emit. */
class CountOnlyLog implements DecisionLog {
  counted = 0;
  readonly emitted: DecisionRecord[] = [];
  emit(record: DecisionRecord, _d: Decision): void {
    this.emitted.push(record);
  }
  count(): void {
    this.counted++;
  }
  async close(): Promise<void> {}
}

describe('decisions with no record reader (no sink, no observer)', () => {
  let verdict: RunningVerdict;
  let client: CheckClient;
  const log = new CountOnlyLog();
  beforeAll(async () => {
    verdict = await startTestVerdict([], { decisionLog: log });
    await verdict.cache!.settled();
    client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
  });
  afterAll(async () => {
    client.close();
    await verdict.stop();
  });

  it('counts every decision (miss, hit, deny) through count() and builds no record for emit', async () => {
    const allowed = httpCheckRequest({ method: 'GET', path: '/healthz' });
    const first = await client.check(allowed);
    const hit = await client.check(allowed);
    const denied = await client.check(httpCheckRequest({ method: 'DELETE', path: '/admin/count-only' }));
    expect(first.okResponse).toBeDefined();
    expect(hit.okResponse).toBeDefined();
    expect(denied.deniedResponse).toBeDefined();
    expect(log.counted).toBe(3);
    expect(log.emitted).toEqual([]);
  });
});
