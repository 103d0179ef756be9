import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock';
import type { Config } from '../config/schema';
import type { Decision } from '../decision/decision';
import type { Logger } from '../telemetry/logger';
import type { Metrics } from '../telemetry/metrics';
import { DecisionLogPipeline } from './decision-log-pipeline';
import type { DecisionLogSink } from './decision-log-sink';
import type { DecisionLog, DecisionRecord } from './decision-record';
import { ConsoleSink } from './sink-console';
import { FileSink } from './sink-file';
import { HttpSink } from './sink-http';

type LogConfig = Config['decisionLog'];

/** Sinks by kind: each builds itself from its config section, or returns null when it is not enabled. */
const SINKS: readonly ((c: LogConfig) => DecisionLogSink | null)[] = [
  (c) => (c.console ? new ConsoleSink() : null),
  (c) => (c.file ? new FileSink(c.file) : null),
  (c) => (c.http ? new HttpSink(c.http) : null),
];

/** Builds the decision log the config asks for and starts its shippers. */
export async function createDecisionLog(config: Config, deps: { metrics: Metrics; logger: Logger; clock: Clock }): Promise<DecisionLog> {
  const c = config.decisionLog;
  const sinks = SINKS.map((make) => make(c)).filter((s): s is DecisionLogSink => s !== null);
  if (sinks.length === 0) return new CountingDecisionLog(deps.metrics);
  const log = new DecisionLogPipeline({
    sinks,
    spoolDir: c.spool.dir,
    spoolMaxBytes: c.spool.maxBytes,
    spoolSegmentBytes: c.spool.segmentBytes,
    fsyncIntervalMs: c.spool.fsyncIntervalMs,
    maxQueueBytes: c.maxQueueBytes,
    mask: c.mask,
    event: { labels: { id: randomUUID(), version: 'verdict', ...c.labels }, path: config.policy.entrypoint },
    shipper: {
      batchBytes: c.batch.bytes,
      batchDelayMs: c.batch.delayMs,
      minRetryDelayMs: c.retry.minDelayMs,
      maxRetryDelayMs: c.retry.maxDelayMs,
    },
    drainOnCloseMs: c.drainOnCloseMs,
    ...deps,
  });
  await log.start();
  return log;
}

/** No sink configured: decisions are counted (verdict_decisionlog_events_total{stage="emitted"}) and dropped by choice. */
export class CountingDecisionLog implements DecisionLog {
  private readonly emitted: { inc(): void };

  constructor(metrics: Metrics) {
    this.emitted = metrics.decisionLogEventCounter('emitted', '');
  }

  emit(_record: DecisionRecord, _decision: Decision): void {
    this.emitted.inc();
  }

  count(): void {
    this.emitted.inc();
  }

  async close(): Promise<void> {}
}
