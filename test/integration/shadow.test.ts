import { execFile } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningVerdict } from '../../src/main';
import { shadowReport } from '../../src/shadow/shadow-report';
import { waitFor } from '../helpers/wait-for';
import { buildTestBundle, checkClient, httpCheckRequest, startTestVerdict, tempDir, type CheckClient } from '../helpers/verdict-harness';

const run = promisify(execFile);
const cli = join(__dirname, '..', '..', 'bin', 'verdict.js');

const REQUESTS = 2000;
const RATE_PER_S = 1000;

/** Active: GET /item/<n> is allowed when n is even. */
const ACTIVE = `package envoy.authz
import rego.v1
default allow := false
allow if {
  input.parsed_path[0] == "item"
  to_number(input.parsed_path[1]) % 2 == 0
}
`;

/** Candidate: the same, except for two sets drawn at test time (denies some even items, allows some odd ones). */
function candidatePolicy(flipToDeny: readonly number[], flipToAllow: readonly number[]): string {
  return `package envoy.authz
import rego.v1
default allow := false
to_deny := ${JSON.stringify(flipToDeny)}
to_allow := ${JSON.stringify(flipToAllow)}
n := to_number(input.parsed_path[1])
allow if {
  input.parsed_path[0] == "item"
  n % 2 == 0
  not n in to_deny
}
allow if {
  input.parsed_path[0] == "item"
  n in to_allow
}
`;
}

function drawDistinct(count: number, pick: () => number): number[] {
  const out = new Set<number>();
  while (out.size < count) out.add(pick());
  return [...out].sort((a, b) => a - b);
}

/** Sends REQUESTS Checks paced at RATE_PER_S (in 10 ms ticks), returning decision id → item and the answers. */
async function paceChecks(
  client: CheckClient,
): Promise<{ idToItem: Map<string, number>; allowedByItem: Map<number, boolean>; seconds: number }> {
  const idToItem = new Map<string, number>();
  const allowedByItem = new Map<number, boolean>();
  const perTick = RATE_PER_S / 100;
  const started = Date.now();
  const inFlight: Promise<void>[] = [];
  for (let n = 0; n < REQUESTS; n += perTick) {
    const due = started + (n / RATE_PER_S) * 1000;
    if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
    for (let i = n; i < Math.min(n + perTick, REQUESTS); i++) {
      inFlight.push(
        client.check(httpCheckRequest({ path: `/item/${i}` })).then((res) => {
          const id = res.dynamicMetadata?.fields?.decision_id?.stringValue ?? '';
          idToItem.set(id, i);
          allowedByItem.set(i, (res.status?.code ?? -1) === 0);
        }),
      );
    }
  }
  await Promise.all(inFlight);
  return { idToItem, allowedByItem, seconds: (Date.now() - started) / 1000 };
}

describe('shadow rollout of a candidate bundle on live gRPC traffic', () => {
  let verdict: RunningVerdict;
  let client: CheckClient;
  const dir = tempDir();
  const logFile = join(dir, 'decisions.log');
  const flipToDeny = drawDistinct(25, () => 2 * randomInt(REQUESTS / 2));
  const flipToAllow = drawDistinct(25, () => 2 * randomInt(REQUESTS / 2) + 1);
  let sent: Awaited<ReturnType<typeof paceChecks>>;

  beforeAll(async () => {
    const active = await buildTestBundle({ 'authz.rego': ACTIVE });
    const candidate = await buildTestBundle({ 'authz.rego': candidatePolicy(flipToDeny, flipToAllow) });
    verdict = await startTestVerdict([
      `policy.bundle=${active}`,
      'policy.shadow.sampleRate=1',
      'policy.shadow.maxQueue=100000',
      'policy.shadow.maxCPUShare=1',
      'policy.shadow.bundles.source.type=file',
      `policy.shadow.bundles.source.path=${candidate}`,
      `decisionLog.file.path=${logFile}`,
      `decisionLog.spool.dir=${join(dir, 'spool')}`,
      'decisionLog.batch.delayMs=5',
    ]);
    await waitFor(() => verdict.shadow?.store.current != null, 'the candidate bundle to be active');
    client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
    sent = await paceChecks(client);
    await verdict.shadow!.evaluator.idle();
    const expectedLines = REQUESTS + flipToDeny.length + flipToAllow.length;
    await waitFor(() => readFileSync(logFile, 'utf8').split('\n').filter(Boolean).length === expectedLines, `${expectedLines} log lines`);
  }, 120_000);

  afterAll(async () => {
    client?.close();
    await verdict?.stop();
  });

  it('answers every request with the active bundle, never the candidate', () => {
    expect(sent.allowedByItem.size).toBe(REQUESTS);
    for (const [item, allowed] of sent.allowedByItem) expect({ item, allowed }).toEqual({ item, allowed: item % 2 === 0 });
  });

  it('reports exactly the set of decisions the candidate flips, by direction', async () => {
    const report = await shadowReport(logFile);
    const items = (ids: string[]): number[] => ids.map((id) => sent.idToItem.get(id) ?? -1).sort((a, b) => a - b);
    expect(items(report.byDirection.allow_to_deny.decisionIds)).toEqual(flipToDeny);
    expect(items(report.byDirection.deny_to_allow.decisionIds)).toEqual(flipToAllow);
    expect(report.byDirection.result_changed.count).toBe(0);
    expect(report).toMatchObject({ decisions: REQUESTS, shadowEvents: 50, malformed: 0 });
  });

  it('counts disagreements by direction and drops nothing when the queue has room', async () => {
    const text = await verdict.metrics.registry.getSingleMetricAsString('verdict_shadow_disagreements_total');
    expect(text).toContain(`verdict_shadow_disagreements_total{direction="allow_to_deny"} ${flipToDeny.length}`);
    expect(text).toContain(`verdict_shadow_disagreements_total{direction="deny_to_allow"} ${flipToAllow.length}`);
    const evals = await verdict.metrics.registry.getSingleMetricAsString('verdict_shadow_evaluations_total');
    expect(evals).toContain(`outcome="agree"} ${REQUESTS - 50}`);
    expect(evals).toContain(`outcome="disagree"} 50`);
    expect(evals).not.toContain('outcome="dropped"');
  });

  it('logs each disagreement as a kind "shadow" event with both outcomes', () => {
    const events = readFileSync(logFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map(
        (l) =>
          JSON.parse(l) as {
            kind?: string;
            decision_id: string;
            shadow?: Record<string, { allowed: boolean; bundle: { sha256: string } }>;
          },
      );
    const shadow = events.filter((e) => e.kind === 'shadow');
    const first = shadow[0]!;
    const item = sent.idToItem.get(first.decision_id)!;
    expect(first.shadow!.active!.allowed).toBe(item % 2 === 0);
    expect(first.shadow!.candidate!.allowed).toBe(item % 2 !== 0);
    expect(first.shadow!.active!.bundle.sha256).toBe(verdict.policy.current!.bundle.sha256);
    expect(first.shadow!.candidate!.bundle.sha256).toBe(verdict.shadow!.store.current!.bundle.sha256);
  });

  it('verdict shadow report prints the flips as JSON and exits 3', async () => {
    const out = await run(process.execPath, [cli, 'shadow', 'report', '--log', logFile, '--json']).catch(
      (e: { code: number; stdout: string }) => e,
    );
    expect((out as { code: number }).code).toBe(3);
    const json = JSON.parse((out as { stdout: string }).stdout) as { byDirection: { allow_to_deny: { count: number } } };
    expect(json.byDirection.allow_to_deny.count).toBe(flipToDeny.length);
  });
});

describe('shadow queue byte bound over gRPC (policy.shadow.maxQueueBytes)', () => {
  let verdict: RunningVerdict;
  let client: CheckClient;

  beforeAll(async () => {
    const bundle = await buildTestBundle({ 'authz.rego': ACTIVE });
    verdict = await startTestVerdict([
      `policy.bundle=${bundle}`,
      'cache.enabled=false',
      'policy.shadow.sampleRate=1',
      'policy.shadow.maxQueueBytes=65536',
      'policy.shadow.bundles.source.type=file',
      `policy.shadow.bundles.source.path=${bundle}`,
    ]);
    await waitFor(() => verdict.shadow?.store.current != null, 'the candidate bundle to be active');
    client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
  }, 60_000);

  afterAll(async () => {
    client?.close();
    await verdict?.stop();
  });

  it('drops (and counts) a sampled request larger than the bound, by its size on the wire, and shadows the small ones', async () => {
    // Each waiting sample holds its decoded request: the bound is on what was received, not on the count.
    for (let i = 0; i < 4; i++) {
      await client.check(httpCheckRequest({ path: `/item/${2 * i}`, body: 'b'.repeat(100 * 1024) }));
      await client.check(httpCheckRequest({ path: `/item/${2 * i}` }));
    }
    await verdict.shadow!.evaluator.idle();
    const values = (await verdict.shadow!.metrics.evaluations.get()).values;
    expect(values.find((v) => v.labels.outcome === 'dropped')?.value).toBe(4);
    expect(values.find((v) => v.labels.outcome === 'agree')?.value).toBe(4);
  });
});
