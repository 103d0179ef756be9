import type { DecisionLogSink } from './decision-log-sink';

/**
 * One JSON line per event on a stream (stdout), waiting for the stream to drain (backpressure). A stream
 * error (EPIPE: stdout's reader has gone) fails this delivery and every later one, so the events stay in the
 * spool and the shipper counts and retries it like any sink that is down; without a listener the error
 * would have been an uncaught exception, ending the process at the first decision after the reader left.
 */
export class ConsoleSink implements DecisionLogSink {
  readonly name = 'console';
  private failed: Error | null = null;

  constructor(private readonly out: NodeJS.WritableStream = process.stdout) {
    out.on('error', (err: Error) => (this.failed ??= err));
  }

  send(lines: readonly string[]): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.out.write(`${lines.join('\n')}\n`, (err) => (err ? reject(err) : resolve()));
    });
  }

  async close(): Promise<void> {}
}
