import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Decision } from '../../src/decision/decision';
import type { DecisionLog, DecisionRecord } from '../../src/decisionlog/decision-record';
import type { RunningVerdict } from '../../src/main';
import { sha256Hex } from '../../src/policy/bundle-reader';
import { opaBuild, revisionPolicy } from '../helpers/bundle-fixtures';
import { nextActivation, publishBundle } from '../helpers/bundle-publish';
import { checkClient, headerValue, httpCheckRequest, startTestVerdict, tempDir } from '../helpers/verdict-harness';

/** Keeps what the pipeline decided per request: which bundle it took, and what that bundle answered. */
class RecordingLog implements DecisionLog {
  readonly seen: { sha256: string | undefined; rev: string | undefined; reason: string }[] = [];
  emit(record: DecisionRecord, decision: Decision): void {
    this.seen.push({
      sha256: record.bundle?.sha256,
      rev: decision.result?.headers.find(([k]) => k === 'x-bundle-rev')?.[1],
      reason: decision.reason,
    });
  }
  async close(): Promise<void> {}
}

const SWAPS = 6;
const CONCURRENCY = 8;

describe('hot swap under concurrent Checks', () => {
  let verdict: RunningVerdict;
  const log = new RecordingLog();
  let paths: { A: string; B: string };
  let live: string;

  beforeAll(async () => {
    const [A, B] = await Promise.all(['A', 'B'].map((r) => opaBuild({ files: revisionPolicy(r), revision: r })));
    paths = { A: A as string, B: B as string };
    live = join(tempDir('verdict-swap-'), 'bundle.tar.gz');
    publishBundle(paths.A, live);
    // The evaluation budget is widened: on a shared, saturated CI box a descheduled process can exceed the
    // default 100 ms, which would deny with ERR_POLICY_TIMEOUT for reasons that have nothing to do with swaps.
    verdict = await startTestVerdict(
      ['bundles.source.type=file', `bundles.source.path=${live}`, 'bundles.source.debounceMs=5', 'policy.timeoutMs=10000'],
      {
        decisionLog: log,
      },
    );
  });

  afterAll(async () => {
    await verdict?.stop();
  });

  it('fails no Check and no request sees a mix of two bundles', async () => {
    const loader = verdict.bundles;
    if (loader === null) throw new Error('file source must start a loader');
    const shaOf = { A: await sha256Hex(readFileSync(paths.A)), B: await sha256Hex(readFileSync(paths.B)) };
    const revOfSha = new Map([
      [shaOf.A, 'A'],
      [shaOf.B, 'B'],
    ]);
    const client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
    let running = true;
    const outcomes = { ok: 0, failed: 0, revs: new Set<string>() };
    const worker = async (): Promise<void> => {
      while (running) {
        try {
          const res = await client.check(httpCheckRequest({ path: '/load' }));
          const rev = headerValue(res.okResponse?.headers, 'x-bundle-rev');
          if (res.status?.code === 0 && rev !== undefined) {
            outcomes.ok++;
            outcomes.revs.add(rev);
          } else outcomes.failed++;
        } catch {
          outcomes.failed++;
        }
      }
    };
    const workers = Array.from({ length: CONCURRENCY }, worker);
    for (let i = 0; i < SWAPS; i++) {
      const next = i % 2 === 0 ? 'B' : 'A';
      const activated = nextActivation(loader);
      publishBundle(paths[next], live);
      expect((await activated).bundle.sha256).toBe(shaOf[next]);
    }
    running = false;
    await Promise.all(workers);
    client.close();

    expect(log.seen.filter((s) => s.reason !== 'ALLOWED')).toEqual([]);
    expect(outcomes.failed).toBe(0);
    expect(outcomes.ok).toBeGreaterThan(0);
    expect([...outcomes.revs].sort()).toEqual(['A', 'B']);
    // Each decision's result came from the bundle its record names: the request used one bundle throughout.
    const mixed = log.seen.filter((s) => s.sha256 === undefined || revOfSha.get(s.sha256) !== s.rev);
    expect(mixed).toEqual([]);
    expect(log.seen.length).toBe(outcomes.ok);
  });
});
