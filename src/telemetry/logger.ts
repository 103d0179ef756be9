import pino, { type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs on stderr (stdout is kept for decision-log streams). Secrets never reach here. */
export function createLogger(level: string, destination: pino.DestinationStream = pino.destination(2)): Logger {
  return pino(
    {
      level,
      base: { service: 'verdict' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: ['*.authorization', '*.cookie', '*.certificate', '*.token'], censor: '[REDACTED]' },
    },
    destination,
  );
}
