import { describe, expect, it } from 'vitest';
import { Metrics } from '../../../src/telemetry/metrics';

/** The value of one label set of a counter, read the public way (get() runs the collect hook). */
async function valueOf(counter: Metrics['decisions'] | Metrics['cacheRequests'], labels: Record<string, string>): Promise<number> {
  const { values } = await counter.get();
  const hit = values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k as keyof typeof v.labels] === x));
  return hit?.value ?? 0;
}

describe('pre-bound counters (counted locally, moved into prom-client when read)', () => {
  it('countDecision: each label set reads back its own count, through get() and the text exposition', async () => {
    const m = new Metrics({ defaultMetrics: false });
    for (let i = 0; i < 3; i++) m.countDecision('allow', 'opa', 'ALLOWED');
    m.countDecision('deny', 'opa', 'DENIED_BY_POLICY');
    m.countDecision('deny', 'none', 'ERR_POLICY_NOT_LOADED');
    expect(await valueOf(m.decisions, { result: 'allow', engine: 'opa', reason: 'ALLOWED' })).toBe(3);
    expect(await valueOf(m.decisions, { result: 'deny', engine: 'opa', reason: 'DENIED_BY_POLICY' })).toBe(1);
    expect(await valueOf(m.decisions, { result: 'deny', engine: 'none', reason: 'ERR_POLICY_NOT_LOADED' })).toBe(1);
    // A second read must not add the same counts again.
    m.countDecision('allow', 'opa', 'ALLOWED');
    const text = await m.registry.metrics();
    expect(text).toContain('verdict_decisions_total{result="allow",engine="opa",reason="ALLOWED"} 4');
  });

  it('bound counts add to direct inc() calls on the same label set', async () => {
    const m = new Metrics({ defaultMetrics: false });
    m.decisions.inc({ result: 'deny', engine: 'none', reason: 'ERR_RESPONSE_TOO_LARGE' });
    m.countDecision('deny', 'none', 'ERR_RESPONSE_TOO_LARGE');
    expect(await valueOf(m.decisions, { result: 'deny', engine: 'none', reason: 'ERR_RESPONSE_TOO_LARGE' })).toBe(2);
  });

  it('cacheRequestCounter: one shared child per outcome, however many caches bind it', async () => {
    const m = new Metrics({ defaultMetrics: false });
    const a = m.cacheRequestCounter('hit');
    const b = m.cacheRequestCounter('hit');
    expect(b).toBe(a);
    a.inc();
    b.inc();
    m.cacheRequestCounter('miss').inc();
    expect(await valueOf(m.cacheRequests, { outcome: 'hit' })).toBe(2);
    expect(await valueOf(m.cacheRequests, { outcome: 'miss' })).toBe(1);
  });

  it('decisionLogEventCounter: inc(n) counts n', async () => {
    const m = new Metrics({ defaultMetrics: false });
    m.decisionLogEventCounter('spooled', '').inc(5);
    m.decisionLogEventCounter('emitted', '').inc();
    const { values } = await m.decisionLogEvents.get();
    expect(values.find((v) => v.labels.stage === 'spooled')?.value).toBe(5);
    expect(values.find((v) => v.labels.stage === 'emitted')?.value).toBe(1);
  });
});
