/**
 * Longest text a fatal line takes from an error. The log sink drops a line past its bound (8 MiB), and an
 * error message can carry a config value (a host name): the one line that says why verdict stopped must fit.
 */
export const MAX_FATAL_TEXT = 4096;

export function boundedText(text: string): string {
  return text.length > MAX_FATAL_TEXT ? `${text.slice(0, MAX_FATAL_TEXT)}… (${text.length} characters)` : text;
}

/** An error as a fatal line carries it: its type, message and stack, each cut to MAX_FATAL_TEXT. */
export function boundedError(err: unknown): { type: string; message: string; stack?: string } {
  const e = err instanceof Error ? err : new Error(String(err));
  return { type: e.name, message: boundedText(e.message), ...(e.stack !== undefined ? { stack: boundedText(e.stack) } : {}) };
}
