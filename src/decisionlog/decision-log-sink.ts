import { VerdictError } from '../errors';

/** Where shipped events go. send() resolves once the sink has them (acknowledged); it rejects to be retried. */
export interface DecisionLogSink {
  /** Stable name: labels metrics and names the sink's cursor in the spool. */
  readonly name: string;
  /** `lines` are serialized events (JSON, no newline), in order; `signal` aborts the delivery (shutdown). */
  send(lines: readonly string[], signal: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

/** Why a delivery failed: the `why` label of verdict_decisionlog_sink_errors_total, a closed set. */
export type SinkFailureWhy = 'timeout' | 'dns' | 'tls' | 'network' | 'redirect' | 'http_4xx' | 'http_5xx' | 'refused' | 'error';

/**
 * A failed delivery, as a sink classifies it. `refused`: the sink will never take this batch as it is, so
 * the shipper sends it in halves and counts an event refused on its own as lost. `retryAfterMs`: how long the
 * sink asked to be left alone (the shipper waits at most its own retry ceiling).
 */
export class SinkFailure extends VerdictError {
  constructor(
    message: string,
    readonly why: SinkFailureWhy,
    readonly retryAfterMs: number | null = null,
  ) {
    super('ERR_DECISIONLOG_SINK', message);
  }
}

/** The why of any delivery error (a sink that throws something else: `error`). */
export function sinkFailureWhy(err: unknown): SinkFailureWhy {
  return err instanceof SinkFailure ? err.why : 'error';
}
