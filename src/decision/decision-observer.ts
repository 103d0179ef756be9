import type { DecisionRecord } from '../decisionlog/decision-record';
import type { CheckRequest } from '../request/check-request';
import type { InputDocument, SPIFFEInput } from '../request/input-document';
import type { Decision } from './decision';

/** What the pipeline had in hand for a request, for observers that re-decide it later (shadow evaluation). */
export interface DecisionContext {
  /** The full input document, when one was built (absent on a cache hit or a refusal before policy). */
  input?: InputDocument;
  /** The decoded CheckRequest, when it passed the size limit. */
  message?: CheckRequest;
  /** Its size as received, in bytes (what an observer that keeps it holds on to, roughly). */
  wireBytes?: number;
  spiffe: SPIFFEInput | null;
}

/** Sees every finished decision (after it is logged), e.g. the fast path's hotness tracker. Never throws. */
export interface DecisionObserver {
  observe(record: DecisionRecord, decision: Decision, context?: DecisionContext): void;
}
