/** Where shipped events go. send() resolves once the sink has them (acknowledged); it rejects to be retried. */
export interface DecisionLogSink {
  /** Stable name: labels metrics and names the sink's cursor in the spool. */
  readonly name: string;
  /** `lines` are serialized events (JSON, no newline), in order. */
  send(lines: readonly string[]): Promise<void>;
  close(): Promise<void>;
}
