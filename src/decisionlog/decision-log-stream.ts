import type { Decision } from '../decision/decision';
import type { DecisionLog, DecisionRecord } from './decision-record';

/**
 * The foundation's decision log: counts every record and, when enabled, writes one JSON line per decision
 * to a stream (stdout). The lossless, masked, spooled pipeline replaces this behind the same interface.
 */
export class StreamDecisionLog implements DecisionLog {
  emitted = 0;

  constructor(private readonly out: NodeJS.WritableStream | null) {}

  emit(record: DecisionRecord, _decision: Decision): void {
    this.emitted++;
    if (this.out) this.out.write(`${JSON.stringify(record)}\n`);
  }

  async close(): Promise<void> {}
}
