import { toVerdictError } from '../errors';
import type { DecisionLogSink } from './decision-log-sink';
import type { Cursor, Spool } from './spool';

export interface ShipperOptions {
  /** A batch is sent once it holds this many bytes … */
  batchBytes: number;
  /** … or once its oldest event waited this long. */
  batchDelayMs: number;
  minRetryDelayMs: number;
  maxRetryDelayMs: number;
  onDelivered(sink: string, events: number, backlogBytes: number): void;
  onError(sink: string, err: Error): void;
  /** A turn failed outside the sink (reading the spool, saving the cursor): it is retried with backoff. */
  onFault(sink: string, err: Error): void;
}

/**
 * Feeds one sink from the spool, in order, from its saved cursor: batches by size and time, retries a
 * failed batch with exponential backoff (jittered) until it is acknowledged, then moves the cursor past it.
 * A crash between acknowledgement and the cursor save re-sends that batch (at-least-once; events carry
 * decision_id for de-duplication).
 */
export class Shipper {
  private cursor: Cursor = { segment: 0, offset: 0 };
  private closed = false;
  private wake: (() => void) | null = null;
  private loop: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    readonly sink: DecisionLogSink,
    private readonly spool: Spool,
    private readonly options: ShipperOptions,
  ) {}

  get position(): Cursor {
    return this.cursor;
  }

  async start(): Promise<void> {
    this.cursor = await this.spool.loadCursor(this.sink.name);
    this.loop = this.run();
  }

  /** New events were spooled. */
  notify(): void {
    this.wake?.();
  }

  /** Stops after the batch in flight; with `drainMs`, first tries to deliver everything spooled. */
  async stop(drainMs: number): Promise<void> {
    const deadline = Date.now() + drainMs;
    while (!this.closed && this.spool.backlog(this.cursor) > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    this.closed = true;
    this.notify();
    await this.loop;
    await this.sink.close();
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      try {
        if (!(await this.turn())) return;
        failures = 0;
      } catch (err) {
        // A spool failure must not end the loop: delivery would stop for good, and the unhandled rejection
        // would take the process down (a crash loop while the cause stays on disk).
        this.options.onFault(this.sink.name, toVerdictError(err, 'ERR_DECISIONLOG_SPOOL'));
        await this.backoff(failures++);
      }
    }
  }

  /** One batch: read, deliver, move the cursor. False when closed during delivery. */
  private async turn(): Promise<boolean> {
    let batch = await this.spool.read(this.cursor, this.options.batchBytes);
    if (batch.lines.length === 0) {
      this.cursor = batch.next; // past bytes skipped as undeliverable, if any
      await this.idle();
      return true;
    }
    if (batch.bytes < this.options.batchBytes) {
      // Batch by time: let more events join for up to batchDelayMs.
      await this.idle(this.options.batchDelayMs, true);
      batch = await this.spool.read(this.cursor, this.options.batchBytes);
    }
    if (!(await this.deliver(batch.lines))) return false;
    this.cursor = batch.next;
    this.options.onDelivered(this.sink.name, batch.lines.length, this.spool.backlog(this.cursor));
    // Delivered, whatever happens to the save: a failed save only means this batch is sent again after a restart.
    await this.spool.saveCursor(this.sink.name, this.cursor);
    return true;
  }

  private async deliver(lines: string[]): Promise<boolean> {
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        await this.sink.send(lines);
        return true;
      } catch (err) {
        this.options.onError(this.sink.name, toVerdictError(err, 'ERR_DECISIONLOG_SINK'));
        await this.backoff(attempt);
      }
    }
    return false;
  }

  /** Jittered exponential backoff: half the cap, plus up to the other half at random. */
  private backoff(attempt: number): Promise<void> {
    const cap = Math.min(this.options.maxRetryDelayMs, this.options.minRetryDelayMs * 2 ** Math.min(attempt, 20));
    return this.idle(cap / 2 + Math.random() * (cap / 2), true);
  }

  /** Waits for new data (or, with a timeout, at most timeoutMs; `timeOnly` ignores new data). */
  private idle(timeoutMs?: number, timeOnly = false): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        if (this.timer) clearTimeout(this.timer);
        this.timer = null;
        this.wake = null;
        resolve();
      };
      if (timeoutMs !== undefined) this.timer = setTimeout(done, timeoutMs);
      this.wake = timeOnly ? () => this.closed && done() : done;
    });
  }
}
