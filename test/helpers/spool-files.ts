import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Counter, Gauge } from 'prom-client';
import type { DecisionLogPipeline, DecisionLogPipelineOptions } from '../../src/decisionlog/decision-log-pipeline';
import type { DecisionLogSink } from '../../src/decisionlog/decision-log-sink';
import { Metrics } from '../../src/telemetry/metrics';
import { pipeline } from './decisionlog-fixtures';
import { recordingLogger, type RecordedLine } from './recording-logger';
import { tempDir } from './verdict-harness';

/** A segment's file name as the spool writes it (12 digits, more past 999999999999). */
export function segmentFile(dir: string, n: number): string {
  return join(dir, `seg-${String(n).padStart(12, '0')}.log`);
}

/** One event line the spool can ship: a JSON object naming its decision id. */
export function eventLine(id: string): string {
  return JSON.stringify({ decision_id: id, prev_hash: '0'.repeat(64) });
}

/** Writes segment `n` holding one event per id, then `tail` as is (e.g. a torn line). */
export function writeSegment(dir: string, n: number, ids: string[], tail = ''): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    segmentFile(dir, n),
    ids
      .map((id) => `${eventLine(id)}\n`)
      .join('')
      .concat(tail),
  );
}

/** A sink that keeps the lines (and their decision ids) it is sent; `beforeAck` runs on each batch before it is acknowledged. */
export class RecordingSink implements DecisionLogSink {
  readonly lines: string[] = [];
  readonly ids: string[] = [];
  readonly batches: string[][] = [];
  beforeAck: ((ids: string[]) => void) | null = null;

  constructor(readonly name = 'rec') {}

  async send(lines: readonly string[]): Promise<void> {
    const ids = lines.map((l) => (JSON.parse(l) as { decision_id: string }).decision_id);
    this.beforeAck?.(ids);
    this.batches.push(ids);
    this.lines.push(...lines);
    this.ids.push(...ids);
  }

  async close(): Promise<void> {}
}

export interface SpoolRun {
  log: DecisionLogPipeline;
  /** The first sink (`rec`); all of them in `sinks`. */
  sink: RecordingSink;
  sinks: RecordingSink[];
  metrics: Metrics;
  logged: RecordedLine[];
}

/**
 * A pipeline over `dir` (made if absent) with recording sinks (one, `rec`, unless named), a recording logger
 * and its own metrics; started.
 */
export async function startOn(dir: string, overrides: Partial<DecisionLogPipelineOptions> = {}, sinkNames = ['rec']): Promise<SpoolRun> {
  const sinks = sinkNames.map((name) => new RecordingSink(name));
  const metrics = new Metrics({ defaultMetrics: false });
  const { logger, lines } = recordingLogger();
  const log = pipeline(sinks, dir, { metrics, logger, ...overrides });
  await log.start();
  return { log, sink: sinks[0] as RecordingSink, sinks, metrics, logged: lines };
}

/** A fresh spool directory. */
export function spoolDir(): string {
  return join(tempDir('verdict-spool-test-'), 'spool');
}

/** A counter's (or gauge's) value for one label value (0 when never set). */
export async function count(counter: Counter<string> | Gauge<string>, label: string, value: string): Promise<number> {
  return (await counter.get()).values.find((v) => v.labels[label] === value)?.value ?? 0;
}
