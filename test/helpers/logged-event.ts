import { existsSync, readFileSync } from 'node:fs';
import { waitFor } from './wait-for';

/** A decision-log event as the file sink writes it (the fields tests read). */
export interface LoggedEvent {
  decision_id: string;
  engine?: string;
  allowed: boolean;
  reason: string;
  http_status?: number;
  dry_run?: boolean;
  result?: { allowed?: boolean; reasons?: string[]; body?: string; http_status?: number };
  metrics?: Record<string, number>;
  input?: Record<string, unknown>;
}

/** Waits (bounded, on the file's content) until the file sink has written the event for this decision id. */
export async function loggedEvent(file: string, decisionId: string | undefined): Promise<LoggedEvent> {
  let hit: LoggedEvent | undefined;
  const find = (): boolean => {
    if (!existsSync(file)) return false;
    const lines = readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l !== '');
    hit = lines.map((l) => JSON.parse(l) as LoggedEvent).find((e) => e.decision_id === decisionId);
    return hit !== undefined;
  };
  await waitFor(find, `decision ${decisionId} in ${file}`, 10_000, 20);
  return hit as LoggedEvent;
}
