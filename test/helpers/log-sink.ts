import { Writable } from 'node:stream';

export interface LogLine {
  level: string;
  msg: string;
  reason?: string;
}

/** Collects pino's JSON lines (pass `stream` to createLogger). */
export function logSink(): { lines: LogLine[]; stream: Writable } {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as LogLine);
      done();
    },
  });
  return { lines, stream };
}
