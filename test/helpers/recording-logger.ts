import type { Logger } from '../../src/telemetry/logger';

export interface RecordedLine {
  level: string;
  fields: unknown;
  msg: string;
}

/** A Logger that keeps its info, warn and error lines, in order, for a test to read (debug lines are dropped). */
export function recordingLogger(): { logger: Logger; lines: RecordedLine[] } {
  const lines: RecordedLine[] = [];
  const at = (level: string) => (fields: unknown, msg: string) => lines.push({ level, fields, msg });
  return { logger: { debug: () => undefined, info: at('info'), warn: at('warn'), error: at('error') } as unknown as Logger, lines };
}
