import { beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/clock';
import type { Decision } from '../../../src/decision/decision';
import type { DecisionLog, DecisionRecord } from '../../../src/decisionlog/decision-record';
import type { PolicyBundle } from '../../../src/policy/bundle';
import { WasmEngine } from '../../../src/policy/engine-wasm';
import { EMPTY_RESULT_FIELDS } from '../../../src/policy/policy-result';
import { PolicyStore, type ActivePolicy } from '../../../src/policy/policy-store';
import type { CheckRequest } from '../../../src/request/check-request';
import { CPUBudget } from '../../../src/shadow/cpu-budget';
import { ShadowEvaluator, directionOf } from '../../../src/shadow/shadow-evaluator';
import { ShadowMetrics } from '../../../src/shadow/shadow-metrics';
import { Metrics } from '../../../src/telemetry/metrics';
import { buildTestBundle, httpCheckRequest } from '../../helpers/verdict-harness';
import { assemble, LOOP_FOREVER, returns } from '../policy/engine-wasm-modules';

/** A clock the test moves by hand: the CPU budget sees exactly the time the test says passed. */
function manualClock(): { nowMs(): number; monotonicNs(): bigint; advanceMs(ms: number): void } {
  let ns = 1_000_000_000n;
  return { nowMs: () => Number(ns / 1_000_000n), monotonicNs: () => ns, advanceMs: (ms) => void (ns += BigInt(ms) * 1_000_000n) };
}

class CollectingLog implements DecisionLog {
  readonly records: DecisionRecord[] = [];
  emit(record: DecisionRecord): void {
    this.records.push(record);
  }
  async close(): Promise<void> {}
}

function finished(path: string, allowed: boolean): { record: DecisionRecord; decision: Decision; message: CheckRequest } {
  const decision: Decision = {
    id: `id-${path}`,
    allowed,
    reason: allowed ? 'ALLOWED' : 'DENIED_BY_POLICY',
    httpStatus: allowed ? 200 : 403,
  };
  decision.result = { allowed, ...EMPTY_RESULT_FIELDS };
  const record = {
    decision_id: decision.id,
    timestamp: '',
    protocol: 'grpc',
    allowed,
    http_status: 200,
    reason: decision.reason,
    cached: true,
    fastpath: false,
    timings_ns: { total: 0 },
    input: {},
    input_kind: 'cache_key',
  } as DecisionRecord;
  return { record, decision, message: httpCheckRequest({ path }) as CheckRequest };
}

describe('ShadowEvaluator', () => {
  let candidate: PolicyStore;
  beforeAll(async () => {
    candidate = new PolicyStore({ entrypoint: 'envoy/authz/allow', maxMemoryPages: 1024, recycleMemoryPages: 256 });
    // The candidate denies everything under /admin and allows the rest.
    await candidate.activateFile(
      await buildTestBundle({
        'authz.rego': 'package envoy.authz\nimport rego.v1\ndefault allow := true\nallow := false if input.parsed_path[0] == "admin"\n',
      }),
    );
  });

  function evaluator(opts: { sampleRate?: number; maxQueue?: number; maxQueueBytes?: number; random?: () => number }) {
    const log = new CollectingLog();
    const metrics = new ShadowMetrics(new Metrics({ defaultMetrics: false }).registry);
    const ev = new ShadowEvaluator({
      candidate: () => candidate.current,
      sampleRate: opts.sampleRate ?? 1,
      maxQueue: opts.maxQueue ?? 100,
      maxQueueBytes: opts.maxQueueBytes ?? 64 * 1024 * 1024,
      maxCPUShare: 1,
      timeoutMs: 5000,
      denyStatus: 403,
      errorStatus: 500,
      limits: { maxHeaders: 100, maxParsedBodyBytes: 1024, maxInputDepth: 64, maxQueryParams: 1000 },
      decisionLog: log,
      metrics,
      clock: manualClock(),
      ...(opts.random ? { random: opts.random } : {}),
    });
    return { ev, log, metrics };
  }

  it('rebuilds the input of a cache hit from the request and logs the flip with both outcomes', async () => {
    const { ev, log } = evaluator({});
    const hit = finished('/admin/users', true);
    ev.observe(hit.record, hit.decision, { message: hit.message, spiffe: null });
    await ev.idle();
    expect(log.records).toHaveLength(1);
    expect(log.records[0]).toMatchObject({ kind: 'shadow', decision_id: 'id-/admin/users', allowed: false, input_kind: 'full' });
    expect(log.records[0]!.shadow).toMatchObject({ direction: 'allow_to_deny', active: { allowed: true }, candidate: { allowed: false } });
  });

  it('drops and counts what does not fit in the queue, never blocking observe()', async () => {
    const { ev, metrics } = evaluator({ maxQueue: 3 });
    for (let i = 0; i < 10; i++) {
      const r = finished(`/x/${i}`, true);
      ev.observe(r.record, r.decision, { message: r.message, spiffe: null });
    }
    expect(ev.pending).toBe(3);
    await ev.idle();
    const text = await metrics.evaluations.get();
    expect(text.values.find((v) => v.labels.outcome === 'dropped')?.value).toBe(7);
    expect(text.values.find((v) => v.labels.outcome === 'agree')?.value).toBe(3);
  });

  it('drops and counts what does not fit in the byte bound: large requests cannot pile up to maxQueue', async () => {
    // Each waiting job holds its decoded request and input: 1,024 of 1 MiB requests held ~1 GiB or more.
    const { ev, metrics } = evaluator({ maxQueue: 1000, maxQueueBytes: 4 * 1024 * 1024 });
    for (let i = 0; i < 10; i++) {
      const r = finished(`/x/${i}`, true);
      ev.observe(r.record, r.decision, { message: r.message, spiffe: null, wireBytes: 1024 * 1024 });
    }
    expect(ev.pending).toBe(4);
    await ev.idle();
    // Drained, the bytes are free again: the next ones queue.
    const r = finished('/x/again', true);
    ev.observe(r.record, r.decision, { message: r.message, spiffe: null, wireBytes: 4 * 1024 * 1024 });
    expect(ev.pending).toBe(1);
    await ev.idle();
    const values = (await metrics.evaluations.get()).values;
    expect(values.find((v) => v.labels.outcome === 'dropped')?.value).toBe(6);
    expect(values.find((v) => v.labels.outcome === 'agree')?.value).toBe(5);
  });

  it('samples the configured fraction (random injected)', async () => {
    let k = 0;
    const { ev, metrics } = evaluator({ sampleRate: 0.25, random: () => (k++ % 4) / 4 });
    for (let i = 0; i < 40; i++) {
      const r = finished(`/x/${i}`, true);
      ev.observe(r.record, r.decision, { message: r.message, spiffe: null });
    }
    await ev.idle();
    expect((await metrics.evaluations.get()).values.find((v) => v.labels.outcome === 'agree')?.value).toBe(10);
  });

  it('skips requests refused before the policy (no input)', async () => {
    const { ev } = evaluator({});
    const r = finished('/admin', true);
    delete r.record.input;
    ev.observe(r.record, r.decision, { message: r.message, spiffe: null });
    expect(ev.pending).toBe(0);
  });
});

describe('ShadowEvaluator with a candidate that holds the event loop', () => {
  // A synchronous engine runs on the event loop: the CPU budget bounds the candidate's average share, but
  // each of its calls stalls the active answers for as long as it runs. Real time here (systemClock): the
  // candidates really are slow.
  function evaluator(candidate: () => ActivePolicy | null, timeoutMs: number) {
    const metrics = new ShadowMetrics(new Metrics({ defaultMetrics: false }).registry);
    const ev = new ShadowEvaluator({
      candidate,
      sampleRate: 1,
      maxQueue: 100,
      maxQueueBytes: 64 * 1024 * 1024,
      maxCPUShare: 1,
      timeoutMs,
      denyStatus: 403,
      errorStatus: 500,
      limits: { maxHeaders: 100, maxParsedBodyBytes: 1024, maxInputDepth: 64, maxQueryParams: 1000 },
      decisionLog: new CollectingLog(),
      metrics,
      clock: systemClock,
    });
    return { ev, metrics };
  }
  async function outcomes(metrics: ShadowMetrics): Promise<Record<string, number>> {
    return Object.fromEntries((await metrics.evaluations.get()).values.map((v) => [String(v.labels.outcome), v.value]));
  }
  function feed(ev: ShadowEvaluator, n: number): void {
    for (let i = 0; i < n; i++) {
      const r = finished(`/x/${i}`, true);
      ev.observe(r.record, r.decision, { message: r.message, spiffe: null });
    }
  }

  it('benches an OPA candidate whose evaluation ran past policy.timeoutMs (allocating until out of memory) until the next candidate bundle', async () => {
    const store = new PolicyStore({ entrypoint: 'envoy/authz/allow', maxMemoryPages: 1024, recycleMemoryPages: 256 });
    // Builds a string of ~10^8 numbers: opa_malloc fails once the 64 MiB memory is full, after ~100+ ms.
    const hog = await buildTestBundle({
      'authz.rego': `package envoy.authz
import rego.v1
default allow := true
allow := {"allowed": true, "headers": {"x": concat(",", [sprintf("%d", [i]) | some i in numbers.range(0, 100000000)])}} if {
  input.parsed_path[0] == "x"
}
`,
    });
    await store.activateFile(hog);
    const { ev, metrics } = evaluator(() => store.current, 20);
    feed(ev, 6);
    await ev.idle();
    // Before: each of the six ran to the trap (six stalls of the event loop), each counted an error. Now the
    // first three do (one or two overruns are not enough to bench), the rest are benched.
    expect(await outcomes(metrics)).toMatchObject({ error: 3, benched: 3 });
    // The bench is per candidate bundle: the next one is evaluated.
    await store.activateFile(await buildTestBundle({ 'authz.rego': 'package envoy.authz\n\ndefault allow := true\n' }));
    feed(ev, 2);
    await ev.idle();
    expect(await outcomes(metrics)).toMatchObject({ error: 3, benched: 3, agree: 2 });
  }, 60_000);

  it('benches a custom-engine candidate after three timeouts (each one held the event loop for engines.wasm.timeoutMs)', async () => {
    const module = assemble({ evaluate: [...LOOP_FOREVER, ...returns(0, 4)], data: 'true' });
    const bundle: PolicyBundle = {
      name: 'loops',
      revision: '',
      sha256: 'loops',
      engine: 'wasm',
      manifest: { metadata: { verdict: { engine: 'wasm' } } },
      files: new Map([['engine.wasm', module]]),
      compressedBytes: module.length,
    };
    const engine = await WasmEngine.load(bundle, { timeoutMs: 30, maxMemoryPages: 16, maxInputBytes: 65536, maxOutputBytes: 4096 });
    try {
      const active: ActivePolicy = { bundle, engine, generation: 1 };
      // policy.timeoutMs far above the engine's own deadline: the engine's ERR_POLICY_TIMEOUT is what benches it.
      const { ev, metrics } = evaluator(() => active, 5000);
      feed(ev, 5);
      await ev.idle();
      expect(await outcomes(metrics)).toMatchObject({ error: 3, benched: 2 });
      expect(engine.restarts).toBe(3);
    } finally {
      engine.close();
    }
  });
});

describe('directionOf', () => {
  const cases = [
    {
      name: 'allow → deny',
      before: { allowed: true, reason: 'ALLOWED', http_status: 200 },
      after: { allowed: false, reason: 'DENIED_BY_POLICY', http_status: 403 },
      want: 'allow_to_deny',
    },
    {
      name: 'deny → allow',
      before: { allowed: false, reason: 'DENIED_BY_POLICY', http_status: 403 },
      after: { allowed: true, reason: 'ALLOWED', http_status: 200 },
      want: 'deny_to_allow',
    },
    {
      name: 'deny status changes',
      before: { allowed: false, reason: 'DENIED_BY_POLICY', http_status: 403, result: { allowed: false } },
      after: { allowed: false, reason: 'DENIED_BY_POLICY', http_status: 451, result: { allowed: false, http_status: 451 } },
      want: 'result_changed',
    },
    {
      name: 'only the explanation differs',
      before: { allowed: true, reason: 'ALLOWED', http_status: 200, result: { allowed: true, reasons: ['a'] } },
      after: { allowed: true, reason: 'ALLOWED', http_status: 200, result: { allowed: true, reasons: ['b'] } },
      want: null,
    },
  ] as const;
  it.each(cases)('$name', ({ before, after, want }) => {
    expect(directionOf(before as never, after as never)).toBe(want);
  });
});

describe('CPUBudget', () => {
  it('makes work wait once a second of credit at the share is spent, and refills with time', () => {
    const clock = manualClock();
    const b = new CPUBudget(0.25, () => clock.monotonicNs());
    expect(b.waitMs()).toBe(0);
    b.spend(350_000_000); // 350 ms of work against a 250 ms credit
    expect(b.waitMs()).toBe(400); // 100 ms deficit at a quarter core
    clock.advanceMs(400);
    expect(b.waitMs()).toBe(0);
  });
});
