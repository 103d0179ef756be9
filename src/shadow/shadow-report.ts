import { countMalformed, jsonObject, logLines, malformedNote, stringOr, type Malformed } from '../decisionlog/log-lines';
import type { ShadowDirection } from './shadow-evaluator';

export interface ShadowFlip {
  decision_id: string;
  /** When the active bundle decided. */
  decided_at: string;
  active: string;
  candidate: string;
}

export interface ShadowCandidateSummary {
  name: string;
  revision: string;
  sha256: string;
  disagreements: number;
}

export interface ShadowReport extends Malformed {
  /** Lines read (decisions and shadow events). */
  lines: number;
  decisions: number;
  shadowEvents: number;
  byDirection: Record<ShadowDirection, { count: number; decisionIds: string[]; examples: ShadowFlip[] }>;
  /** Which candidate bundle disagreed (a log spans swaps of the candidate). */
  candidates: ShadowCandidateSummary[];
  /** True when some decision ids were left out of `decisionIds` (maxIds per direction), or candidates past 1,000. */
  truncated: boolean;
}

interface ShadowSide {
  bundle?: { name?: string; revision?: string; sha256?: string };
  reason?: string;
  allowed?: boolean;
}

/**
 * Summarises the shadow events of a decision log (JSON lines as the file sink writes them): the decisions the
 * candidate would flip, by direction, with every decision id (bounded by `maxIds`) and a few examples.
 */
export async function shadowReport(file: string, opts: { maxIds?: number; maxExamples?: number } = {}): Promise<ShadowReport> {
  const maxIds = opts.maxIds ?? 100_000;
  const maxExamples = opts.maxExamples ?? 5;
  const bucket = (): ShadowReport['byDirection'][ShadowDirection] => ({ count: 0, decisionIds: [], examples: [] });
  const report: ShadowReport = {
    lines: 0,
    decisions: 0,
    shadowEvents: 0,
    malformed: 0,
    malformedLines: [],
    byDirection: { allow_to_deny: bucket(), deny_to_allow: bucket(), result_changed: bucket() },
    candidates: [],
    truncated: false,
  };
  const candidates = new Map<string, ShadowCandidateSummary>();
  for await (const { number, text } of logLines(file)) {
    if (text?.trim() === '') continue;
    report.lines++;
    const event = text === null ? null : (jsonObject(text) as ParsedEvent | null);
    if (event === null) {
      countMalformed(report, number);
      continue;
    }
    if (event.kind !== 'shadow') {
      report.decisions++;
      continue;
    }
    report.shadowEvents++;
    const direction = event.shadow?.direction;
    // Own keys only: "constructor" or "__proto__" must not reach Object.prototype.
    const b =
      typeof direction === 'string' && Object.hasOwn(report.byDirection, direction)
        ? report.byDirection[direction as ShadowDirection]
        : undefined;
    if (b === undefined) {
      countMalformed(report, number);
      continue;
    }
    b.count++;
    const id = typeof event.decision_id === 'string' ? event.decision_id : '';
    if (b.decisionIds.length < maxIds) b.decisionIds.push(id);
    else report.truncated = true;
    if (b.examples.length < maxExamples) b.examples.push(flipOf(id, event));
    if (!countCandidate(candidates, event.shadow?.candidate)) report.truncated = true;
  }
  report.candidates = [...candidates.values()];
  return report;
}

interface ParsedEvent {
  kind?: unknown;
  decision_id?: unknown;
  shadow?: { direction?: unknown; decided_at?: string; active?: ShadowSide; candidate?: ShadowSide };
}

function flipOf(id: string, e: ParsedEvent): ShadowFlip {
  return {
    decision_id: id,
    decided_at: stringOr(e.shadow?.decided_at, ''),
    active: stringOr(e.shadow?.active?.reason, '?'),
    candidate: stringOr(e.shadow?.candidate?.reason, '?'),
  };
}

/** Distinct candidate bundles a report names; a log that names more is reported truncated. */
const MAX_CANDIDATES = 1000;

/** Counts a disagreement for its candidate; false when the candidate would be past MAX_CANDIDATES. */
function countCandidate(map: Map<string, ShadowCandidateSummary>, side: ShadowSide | undefined): boolean {
  // The log is a file anyone may have written: only strings are taken (a number here broke the text format).
  const bundle = side?.bundle;
  const sha256 = stringOr(bundle?.sha256, '');
  let entry = map.get(sha256);
  if (entry === undefined) {
    if (map.size >= MAX_CANDIDATES) return false;
    entry = { name: stringOr(bundle?.name, ''), revision: stringOr(bundle?.revision, ''), sha256, disagreements: 0 };
    map.set(sha256, entry);
  }
  entry.disagreements++;
  return true;
}

export function formatShadowReport(r: ShadowReport): string {
  const out = [`lines ${r.lines}  decisions ${r.decisions}  shadow events ${r.shadowEvents}  malformed ${r.malformed}`];
  for (const c of r.candidates) out.push(`candidate ${c.name} ${c.revision} ${c.sha256.slice(0, 12)}: ${c.disagreements} disagreements`);
  for (const [direction, b] of Object.entries(r.byDirection)) {
    out.push(`${direction.replace(/_/g, ' ')}: ${b.count}`);
    for (const x of b.examples) out.push(`  ${x.decision_id}  ${x.decided_at}  ${x.active} → ${x.candidate}`);
  }
  out.push(...malformedNote(r));
  if (r.truncated) out.push('note: decision id lists or the candidate list were truncated');
  return `${out.join('\n')}\n`;
}
