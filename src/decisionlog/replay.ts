import { toVerdictError } from '../errors';
import type { PolicyEngine } from '../policy/policy-engine';
import type { InputDocument } from '../request/input-document';
import { countMalformed, jsonObject, logLines, malformedNote, stringOr, type Malformed } from './log-lines';

export interface FlipExample {
  decision_id: string;
  timestamp: string;
  input_kind: string;
  /** The new decision's reason (rule/policy ids) or error code. */
  now: string;
}

export interface ReplayReport extends Malformed {
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
    malformed: 0,
    malformedLines: [],
  };
  for await (const { number, text } of logLines(file)) {
    if (text?.trim() === '') continue;
    const e = text === null ? null : (jsonObject(text) as LoggedEvent | null);
    if (e === null) {
      // Not an event (garbage, cut short, too long to read): counted with its line number, the rest replayed.
      countMalformed(report, number);
      continue;
    }
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
      bucket.examples.push({
        decision_id: stringOr(e.decision_id, ''),
        timestamp: stringOr(e.timestamp, ''),
        input_kind: stringOr(e.input_kind, 'full'),
        now,
      });
    }
  }
  return report;
}

/** An event as logged: any field may be missing or of another type (the file is read as found). */
interface LoggedEvent {
  decision_id?: unknown;
  timestamp?: unknown;
  input?: unknown;
  result?: { allowed?: unknown } | null;
  input_kind?: unknown;
  kind?: unknown;
}

export function formatReplayReport(r: ReplayReport): string {
  const out = [
    `events ${r.events}  evaluated ${r.evaluated}  skipped ${r.skipped}  unchanged ${r.unchanged}  errors ${r.errors}  malformed ${r.malformed}`,
    `allow → deny: ${r.allowToDeny.count}`,
    ...r.allowToDeny.examples.map(
      (x) => `  ${x.decision_id}  ${x.timestamp}  now: ${x.now}${x.input_kind === 'cache_key' ? '  (cache-key input)' : ''}`,
    ),
    `deny → allow: ${r.denyToAllow.count}`,
    ...r.denyToAllow.examples.map(
      (x) => `  ${x.decision_id}  ${x.timestamp}  now: ${x.now}${x.input_kind === 'cache_key' ? '  (cache-key input)' : ''}`,
    ),
  ];
  out.push(...malformedNote(r));
  if (r.partialInputs > 0) out.push(`note: ${r.partialInputs} events were cache hits that logged only the cache-key fields`);
  return `${out.join('\n')}\n`;
}
