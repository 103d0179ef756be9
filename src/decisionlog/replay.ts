import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { toVerdictError } from '../errors';
import type { PolicyEngine } from '../policy/policy-engine';
import type { InputDocument } from '../request/input-document';

export interface FlipExample {
  decision_id: string;
  timestamp: string;
  input_kind: string;
  /** The new decision's reason (rule/policy ids) or error code. */
  now: string;
}

export interface ReplayReport {
  events: number;
  evaluated: number;
  /** Events with no input (refused before policy) or no recorded verdict. */
  skipped: number;
  /** Events that recorded only cache-key fields: replayed, but a new policy reading more input sees less. */
  partialInputs: number;
  unchanged: number;
  allowToDeny: { count: number; examples: FlipExample[] };
  denyToAllow: { count: number; examples: FlipExample[] };
  /** The new bundle failed to decide (counted as deny: fail closed). */
  errors: number;
}

/**
 * Re-evaluates every logged input against a candidate bundle's engine and reports the decisions that flip.
 * Masked fields are absent from logged inputs, so a policy that reads them is replayed without them.
 */
export async function replayDecisionLog(file: string, engine: PolicyEngine, maxExamples = 5): Promise<ReplayReport> {
  const report: ReplayReport = {
    events: 0,
    evaluated: 0,
    skipped: 0,
    partialInputs: 0,
    unchanged: 0,
    allowToDeny: { count: 0, examples: [] },
    denyToAllow: { count: 0, examples: [] },
    errors: 0,
  };
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.trim() === '') continue;
    const e = JSON.parse(line) as {
      decision_id?: string;
      timestamp?: string;
      input?: unknown;
      allowed?: unknown;
      result?: { allowed?: unknown };
      input_kind?: string;
      kind?: string;
    };
    // Events that are not decisions (shadow disagreements, kernel observations) have nothing to replay.
    if (e.kind !== undefined) continue;
    report.events++;
    const before = typeof e.result?.allowed === 'boolean' ? e.result.allowed : undefined;
    if (e.input === undefined || before === undefined) {
      report.skipped++;
      continue;
    }
    if (e.input_kind === 'cache_key') report.partialInputs++;
    report.evaluated++;
    let after = false;
    let now: string;
    try {
      const r = await engine.evaluate(e.input as InputDocument);
      after = r.allowed;
      now = r.reasons.join(',') || (after ? 'ALLOWED' : 'DENIED_BY_POLICY');
    } catch (err) {
      report.errors++;
      now = toVerdictError(err).code;
    }
    if (after === before) {
      report.unchanged++;
      continue;
    }
    const bucket = before ? report.allowToDeny : report.denyToAllow;
    bucket.count++;
    if (bucket.examples.length < maxExamples) {
      bucket.examples.push({ decision_id: e.decision_id ?? '', timestamp: e.timestamp ?? '', input_kind: e.input_kind ?? 'full', now });
    }
  }
  return report;
}

export function formatReplayReport(r: ReplayReport): string {
  const out = [
    `events ${r.events}  evaluated ${r.evaluated}  skipped ${r.skipped}  unchanged ${r.unchanged}  errors ${r.errors}`,
    `allow → deny: ${r.allowToDeny.count}`,
    ...r.allowToDeny.examples.map(
      (x) => `  ${x.decision_id}  ${x.timestamp}  now: ${x.now}${x.input_kind === 'cache_key' ? '  (cache-key input)' : ''}`,
    ),
    `deny → allow: ${r.denyToAllow.count}`,
    ...r.denyToAllow.examples.map(
      (x) => `  ${x.decision_id}  ${x.timestamp}  now: ${x.now}${x.input_kind === 'cache_key' ? '  (cache-key input)' : ''}`,
    ),
  ];
  if (r.partialInputs > 0) out.push(`note: ${r.partialInputs} events were cache hits that logged only the cache-key fields`);
  return `${out.join('\n')}\n`;
}
