import pino, { type Logger } from 'pino';
import { stderrSink } from './log-sink';

export type { Logger };

/**
 * Structured JSON logs on stderr (stdout is kept for decision-log streams), written so that the reader can
 * neither block a Check nor the exit (log-sink.ts). Secrets never reach here.
 */
export function createLogger(level: string, destination: pino.DestinationStream = stderrSink()): Logger {
  return pino(
    {
      level,
      base: { service: 'verdict' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }), log: keepOneMsg },
      redact: { paths: ['*.authorization', '*.cookie', '*.certificate', '*.token'], censor: '[REDACTED]' },
    },
    destination,
  );
}

/**
 * pino writes the message as `msg` and then every field of the merge object, so a field named `msg` would
 * give a line two `msg` keys (JSON parsers keep one, silently). Such a field is renamed to `detail`.
 */
function keepOneMsg(obj: Record<string, unknown>): Record<string, unknown> {
  if (!Object.hasOwn(obj, 'msg')) return obj;
  const { msg, ...rest } = obj;
  return { ...rest, detail: msg };
}
