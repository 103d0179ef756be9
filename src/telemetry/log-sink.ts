import SonicBoom from 'sonic-boom';

/** At most this many bytes of log lines wait for a slow reader; later lines are dropped and counted. */
const MAX_WAITING_BYTES = 8 * 1024 * 1024;
/** How long the exit flush may retry a reader that is there but not reading. */
const EXIT_FLUSH_MS = 2000;

/**
 * Where verdict's log lines go (a file descriptor, stderr in a server). Writes are asynchronous, so a slow
 * reader never holds up a Check; a reader that stops reading makes lines wait up to MAX_WAITING_BYTES, then
 * drop; a reader that has gone (EPIPE, or any other write error) ends the writing for good (`stopped`, metric
 * `verdict_log_output_stopped`; the lines waiting then go with it). Lines dropped, and every line after the
 * end, are counted in `dropped` (metric `verdict_log_lines_dropped_total`). At exit, `flushAtExit` writes
 * what waits and is bounded whatever the reader does: an error ends it at once, a full pipe after
 * `exitFlushMs`. (pino's own destination, on sonic-boom 4, retried a broken pipe at exit forever: a verdict
 * whose log reader had gone never stopped on SIGTERM.) Not bounded: a blocking descriptor whose reader is
 * there but never reads holds one libuv pool thread while serving, and the exit's write in the kernel.
 */
export class LogSink {
  private readonly out: SonicBoom;
  private readonly exitFlushMs: number;
  private exitDeadline = Infinity;
  /** The code of the write error that ended writing (the lines waiting then went with it), or null. */
  stopped: string | null = null;
  /** Lines not written: dropped while the reader was slow, or handed over after writing ended. */
  dropped = 0;

  constructor(fd: number, options: { maxWaitingBytes?: number; exitFlushMs?: number } = {}) {
    this.exitFlushMs = options.exitFlushMs ?? EXIT_FLUSH_MS;
    this.out = new SonicBoom({
      fd,
      minLength: 0,
      maxLength: options.maxWaitingBytes ?? MAX_WAITING_BYTES,
      // A full pipe is retried every 100 ms for as long as it takes while serving; at exit until the deadline.
      retryEAGAIN: () => Date.now() < this.exitDeadline,
    });
    this.out.on('drop', () => this.dropped++);
    this.out.on('error', (err: NodeJS.ErrnoException) => (this.stopped ??= err.code ?? 'ERROR'));
  }

  /** pino's DestinationStream: one formatted line. */
  write(line: string): void {
    if (this.stopped === null) this.out.write(line);
    else this.dropped++;
  }

  /** Writes the waiting lines synchronously; returns within the exit deadline, whatever the reader does. */
  flushAtExit(): void {
    if (this.stopped !== null) return;
    this.exitDeadline = Date.now() + this.exitFlushMs;
    try {
      this.out.flushSync();
    } catch (err) {
      this.stopped = (err as NodeJS.ErrnoException).code ?? 'ERROR';
    }
  }
}

let stderr: LogSink | undefined;

/** The stderr sink's counts for the metrics, or null while nothing has logged through it. */
export function stderrSinkState(): Pick<LogSink, 'dropped' | 'stopped'> | null {
  return stderr ?? null;
}

/** The process's stderr sink (one per process), flushed when the process exits. */
export function stderrSink(): LogSink {
  if (stderr !== undefined) return stderr;
  const sink = (stderr = new LogSink(2));
  process.once('exit', () => sink.flushAtExit());
  return sink;
}
