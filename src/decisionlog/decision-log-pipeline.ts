import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Clock } from '../clock';
import type { ErrorCode, VerdictError } from '../errors';
import type { Decision } from '../decision/decision';
import { LogThrottle } from '../telemetry/log-throttle';
import type { Logger } from '../telemetry/logger';
import type { Metrics } from '../telemetry/metrics';
import { toDecisionEvent, type EventContext } from './decision-event';
import { sinkFailureWhy, type DecisionLogSink } from './decision-log-sink';
import type { DecisionLog, DecisionRecord } from './decision-record';
import { EventMask, type MaskRule } from './event-mask';
import { Shipper, type ShipperOptions } from './shipper';
import { Spool } from './spool';
import { lineHash } from './hash-chain';

/** A sink's error message in a log line: sinks bound theirs, this bounds any other. */
const MAX_DETAIL_CHARS = 300;

export interface DecisionLogPipelineOptions {
  sinks: DecisionLogSink[];
  /** null: a private temporary directory (undelivered events do not survive a restart). */
  spoolDir: string | null;
  spoolMaxBytes: number;
  spoolSegmentBytes: number;
  /** Group commit: fdatasync the spool this often while it is being written. */
  fsyncIntervalMs: number;
  /** Bound on events waiting (in memory) for the next spool write. */
  maxQueueBytes: number;
  mask: readonly (string | MaskRule)[];
  event: EventContext;
  shipper: Pick<ShipperOptions, 'batchBytes' | 'batchDelayMs' | 'minRetryDelayMs' | 'maxRetryDelayMs'>;
  /** On close, how long the sinks get to catch up before the rest stays spooled for the next start. */
  drainOnCloseMs: number;
  metrics: Metrics;
  logger: Logger;
  clock: Clock;
}

/**
 * The lossless decision log. emit() (on the Check path) masks the event, links it into the hash chain and
 * queues its line; one write per event-loop turn appends the queue to the on-disk spool (before any
 * response of that turn is sent, so a decision Envoy saw is in the kernel's hands even if verdict is then
 * killed). Shippers feed each sink from the spool in order, off the Check path, with retries. A full spool
 * loses events, counted and logged, never silently; the Check path never waits on a sink.
 */
export class DecisionLogPipeline implements DecisionLog {
  private readonly spool: Spool;
  private readonly mask: EventMask;
  private readonly shippers: Shipper[];
  private pending: string[] = [];
  private pendingBytes = 0;
  private flushScheduled = false;
  private head: string;
  private syncTimer: NodeJS.Timeout | null = null;
  private lostSinceLog = 0;
  private lastLossLogMs = 0;
  /** Spool faults by why, and sink failures by sink: each logged at most once a second. */
  private readonly faultLog: LogThrottle;
  private readonly sinkFailureLog: LogThrottle;
  private closed = false;
  private readonly emitted: { inc(): void };
  private readonly spooled: { inc(n: number): void };

  constructor(private readonly options: DecisionLogPipelineOptions) {
    this.faultLog = new LogThrottle(options.clock, 1000);
    this.sinkFailureLog = new LogThrottle(options.clock, 1000);
    const dir = options.spoolDir ?? mkdtempSync(join(tmpdir(), 'verdict-spool-'));
    if (options.spoolDir === null)
      options.logger.warn({ dir }, 'decision-log spool is temporary: set decisionLog.spool.dir to keep undelivered events across restarts');
    this.spool = new Spool({
      dir,
      maxBytes: options.spoolMaxBytes,
      segmentBytes: options.spoolSegmentBytes,
      // No line (nor one turn's append) is longer than the queue bound: a longer one is lost before the spool.
      maxLineBytes: options.maxQueueBytes,
      onFault: (why, detail, code) => this.fault(why, detail, code),
      onLost: (why, n, detail) => this.lose(why, n, detail),
    });
    this.head = this.spool.open();
    this.mask = new EventMask(options.mask);
    const { metrics } = options;
    this.emitted = metrics.decisionLogEventCounter('emitted', '');
    const spooledChild = metrics.decisionLogEventCounter('spooled', '');
    this.spooled = { inc: (n) => spooledChild.inc(n) };
    this.shippers = options.sinks.map(
      (sink) =>
        new Shipper(sink, this.spool, {
          ...options.shipper,
          onDelivered: (name, n, backlog) => {
            metrics.decisionLogEvents.inc({ stage: 'delivered', sink: name }, n);
            metrics.decisionLogBacklog.set({ sink: name }, backlog);
            this.releaseDelivered();
          },
          onError: (name, err, backlog) => {
            metrics.decisionLogBacklog.set({ sink: name }, backlog);
            this.sinkFailed(name, err);
          },
          onRefused: (name, n, err) => this.lose('sink_refused', n, `sink ${name} refused: ${err.message}`, err.code),
          onFault: (name, err) => this.fault('ship', `sink ${name}: ${err.message}; retrying`),
        }),
    );
  }

  /** Starts the shippers (they resume from their saved cursors: a restart drains what was spooled). */
  async start(): Promise<void> {
    for (const s of this.shippers) await s.start();
    this.releaseDelivered();
  }

  emit(record: DecisionRecord, decision: Decision): void {
    this.emitted.inc();
    if (this.closed) return this.lose('closed', 1);
    try {
      const { event, erased, masked } = this.mask.apply(toDecisionEvent(record, decision, this.options.event));
      if (erased.length > 0) event.erased = erased;
      if (masked.length > 0) event.masked = masked;
      event.prev_hash = this.head;
      const line = JSON.stringify(event);
      // Bytes, not characters: the spool bounds its reads by this.
      const bytes = Buffer.byteLength(line) + 1;
      if (this.pendingBytes + bytes > this.options.maxQueueBytes) return this.lose('queue_full', 1);
      this.head = lineHash(line);
      this.pending.push(line);
      this.pendingBytes += bytes;
      this.scheduleFlush();
    } catch (err) {
      this.options.logger.error({ detail: (err as Error).message }, 'decision-log event could not be built');
      this.lose('event_error', 1);
    }
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // A microtask runs before the Check's response callback: the event is written before Envoy hears back.
    queueMicrotask(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.pending.length === 0) return;
    const lines = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    let ok = false;
    try {
      ok = this.spool.append(`${lines.join('\n')}\n`, this.head);
    } catch (err) {
      // Logged with the loss (at most once a second): a full disk fails every flush.
      return this.relink(lines.length, 'spool_error', `spool write failed: ${(err as Error).message}`);
    }
    if (!ok) return this.relink(lines.length, 'spool_full');
    this.spooled.inc(lines.length);
    for (const s of this.shippers) s.notify();
    this.scheduleSync();
  }

  /** Lost lines never reach the chain: the next event links to the last line actually written. */
  private relink(n: number, why: string, detail?: string): void {
    this.head = this.spool.chainHead;
    this.lose(why, n, detail);
  }

  private scheduleSync(): void {
    if (this.syncTimer) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = null;
      void this.spool.sync();
    }, this.options.fsyncIntervalMs);
    this.syncTimer.unref();
  }

  /** Counted always; logged at most once a second, with the count since the last line (`detail`: a spool or sink loss). */
  private lose(why: string, n: number, detail?: string, code: ErrorCode = 'ERR_DECISIONLOG_SPOOL'): void {
    this.options.metrics.decisionLogLost.inc({ why }, n);
    this.lostSinceLog += n;
    const now = this.options.clock.nowMs();
    if (now - this.lastLossLogMs >= 1000) {
      const spool = detail === undefined ? {} : { code, detail };
      this.options.logger.error({ lost: this.lostSinceLog, why, ...spool }, 'decision-log events lost');
      this.lostSinceLog = 0;
      this.lastLossLogMs = now;
    }
  }

  /**
   * A failed delivery (retried, or refused and split): counted always, by its bounded why; logged at most once
   * a second per sink with the failures since the last line, so a sink failing fast cannot flood the log.
   */
  private sinkFailed(sink: string, err: VerdictError): void {
    const why = sinkFailureWhy(err);
    this.options.metrics.decisionLogSinkErrors.inc({ sink, why });
    const held = this.sinkFailureLog.admit(sink);
    if (held === null) return;
    const detail = err.message.slice(0, MAX_DETAIL_CHARS);
    this.options.logger.warn(
      { sink, code: err.code, why, detail, failures: held + 1 },
      'decision-log sink failed; retrying (events stay spooled)',
    );
  }

  /** A spool failure verdict serves on through: counted always; logged with its code at most once a second per why. */
  private fault(why: string, detail: string, code: ErrorCode = 'ERR_DECISIONLOG_SPOOL'): void {
    this.options.metrics.decisionLogSpoolFaults.inc({ why });
    if (this.faultLog.admit(why) === null) return;
    this.options.logger.warn({ code, why, detail }, 'decision-log spool fault; serving on');
  }

  private releaseDelivered(): void {
    if (this.shippers.length === 0) return;
    const slowest = this.shippers
      .map((s) => s.position)
      .reduce((a, b) => (b.segment < a.segment || (b.segment === a.segment && b.offset < a.offset) ? b : a));
    this.spool.release(slowest);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    await Promise.all(this.shippers.map((s) => s.stop(this.options.drainOnCloseMs)));
    if (this.syncTimer) clearTimeout(this.syncTimer);
    this.spool.close();
  }
}
