import { toVerdictError, type VerdictError } from '../errors';
import { SinkFailure, type DecisionLogSink } from './decision-log-sink';
import type { Cursor, Spool } from './spool';

export interface ShipperOptions {
  /** A batch is sent once it holds this many bytes … */
  batchBytes: number;
  /** … or once its oldest event waited this long. */
  batchDelayMs: number;
  minRetryDelayMs: number;
  maxRetryDelayMs: number;
  onDelivered(sink: string, events: number, backlogBytes: number): void;
  /** A delivery failed; `backlogBytes` is what waits for the sink (so the gauge moves while it is down). */
  onError(sink: string, err: VerdictError, backlogBytes: number): void;
  /**
   * The sink refused these events on their own (SinkFailure `refused`) while it took the others of their
   * batch: they are lost, and delivery goes on.
   */
  onRefused(sink: string, events: number, err: VerdictError): void;
  /** A turn failed outside the sink (reading the spool, saving the cursor): it is retried with backoff. */
  onFault(sink: string, err: Error): void;
}

/** What delivering a batch came to: events the sink took, and the refusal of each it refused on its own. */
interface Delivery {
  accepted: number;
  refused: SinkFailure[];
}

/**
 * Feeds one sink from the spool, in order, from its saved cursor: batches by size and time, retries a
 * failed batch with exponential backoff (jittered; a sink's Retry-After up to the ceiling) until it is
 * acknowledged, then moves the cursor past it. A batch the sink refuses as it is goes in halves, down to single
 * events. When the sink took some of them, one refused alone is counted lost, so one bad event cannot hold up
 * all that follow it; when it took none, the sink is what is wrong (a schema or a setting that refuses
 * everything): nothing is lost, the batch stays spooled and is tried again, with backoff and with any events
 * that arrived meanwhile. One batch is in flight at a time: a slow sink holds one batch in memory, the rest
 * waits in the spool.
 * A crash between acknowledgement and the cursor save re-sends that batch (at-least-once; events carry
 * decision_id for de-duplication).
 */
export class Shipper {
  private cursor: Cursor = { segment: 0, offset: 0 };
  private closed = false;
  private wake: (() => void) | null = null;
  private loop: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  /** Aborted by stop() once the drain deadline passes: ends the delivery in flight, whatever the sink does. */
  private readonly stopping = new AbortController();
  /** Turns in a row whose whole batch the sink refused, event by event (the backoff's attempt count). */
  private refusedTurns = 0;

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

  /**
   * With `drainMs`, first tries to deliver everything spooled; then abandons the batch in flight (it stays
   * spooled for the next start) and stops, so a wedged sink holds shutdown no longer than `drainMs`.
   */
  async stop(drainMs: number): Promise<void> {
    const deadline = Date.now() + drainMs;
    while (!this.closed && this.spool.backlog(this.cursor) > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    this.closed = true;
    this.stopping.abort();
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
    const outcome = await this.deliver(batch.lines);
    if (outcome === null) return false;
    if (outcome.accepted === 0) {
      // Every event refused on its own: kept (the cursor stays), tried again later.
      await this.backoff(this.refusedTurns++, outcome.refused[0]?.retryAfterMs ?? null);
      return true;
    }
    this.refusedTurns = 0;
    for (const failure of outcome.refused) this.options.onRefused(this.sink.name, 1, failure);
    this.cursor = batch.next;
    this.options.onDelivered(this.sink.name, outcome.accepted, this.spool.backlog(this.cursor));
    // Delivered, whatever happens to the save: a failed save only means this batch is sent again after a restart.
    await this.spool.saveCursor(this.sink.name, this.cursor);
    return true;
  }

  /** Delivers `lines`: how many the sink took and the refusal of each it refused on its own; null when closed first. */
  private async deliver(lines: readonly string[]): Promise<Delivery | null> {
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        await this.sendUnlessStopped(lines);
        return { accepted: lines.length, refused: [] };
      } catch (err) {
        if (this.closed) return null; // abandoned by stop(): not a sink failure
        const failure = toVerdictError(err, 'ERR_DECISIONLOG_SINK');
        this.options.onError(this.sink.name, failure, this.spool.backlog(this.cursor));
        if (failure instanceof SinkFailure && failure.why === 'refused') return this.split(lines, failure);
        await this.backoff(attempt, failure instanceof SinkFailure ? failure.retryAfterMs : null);
      }
    }
    return null;
  }

  /** A refused batch, in halves and in order, down to the events refused on their own. */
  private async split(lines: readonly string[], failure: SinkFailure): Promise<Delivery | null> {
    if (lines.length === 1) return { accepted: 0, refused: [failure] };
    const half = Math.ceil(lines.length / 2);
    const first = await this.deliver(lines.slice(0, half));
    if (first === null) return null;
    const second = await this.deliver(lines.slice(half));
    return second === null ? null : { accepted: first.accepted + second.accepted, refused: [...first.refused, ...second.refused] };
  }

  /** The sink's send, or a rejection as soon as stop() gives up on it (a sink may ignore the signal). */
  private sendUnlessStopped(lines: readonly string[]): Promise<void> {
    const { signal } = this.stopping;
    let onAbort = (): void => undefined;
    const stopped = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal.reason as Error);
      signal.addEventListener('abort', onAbort, { once: true });
    });
    return Promise.race([this.sink.send(lines, signal), stopped]).finally(() => signal.removeEventListener('abort', onAbort));
  }

  /**
   * Jittered exponential backoff: half the cap, plus up to the other half at random; longer if the sink asked
   * (Retry-After), but never past maxRetryDelayMs whatever it asked.
   */
  private backoff(attempt: number, retryAfterMs: number | null = null): Promise<void> {
    const { minRetryDelayMs, maxRetryDelayMs } = this.options;
    const cap = Math.min(maxRetryDelayMs, minRetryDelayMs * 2 ** Math.min(attempt, 20));
    const jittered = cap / 2 + Math.random() * (cap / 2);
    return this.idle(Math.max(jittered, Math.min(retryAfterMs ?? 0, maxRetryDelayMs)), true);
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
