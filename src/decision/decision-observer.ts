import type { DecisionRecord } from '../decisionlog/decision-record';
import type { Decision } from './decision';

/** Sees every finished decision (after it is logged), e.g. the fast path's hotness tracker. Never throws. */
export interface DecisionObserver {
  observe(record: DecisionRecord, decision: Decision): void;
}
