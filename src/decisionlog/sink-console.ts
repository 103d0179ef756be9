import type { DecisionLogSink } from './decision-log-sink';

/** One JSON line per event on a stream (stdout), waiting for the stream to drain (backpressure). */
export class ConsoleSink implements DecisionLogSink {
  readonly name = 'console';

  constructor(private readonly out: NodeJS.WritableStream = process.stdout) {}

  send(lines: readonly string[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.out.write(`${lines.join('\n')}\n`, (err) => (err ? reject(err) : resolve()));
    });
  }

  async close(): Promise<void> {}
}
