import type { SecureContextOptions } from 'node:tls';
import type { ErrorCode } from '../errors';

export type CallerVerdict = { ok: true; callerID: string; validUntilMs: number } | { ok: false; code: ErrorCode };

/** The per-connection caller check of an mTLS listener (run once per connection, not per call). */
export interface CallerCheck {
  /**
   * Bumped whenever what a verdict relied on changes (trust bundle, allow-list). A connection whose cached
   * verdict carries an older generation is checked again on its next call.
   */
  readonly generation: number;
  /** Judges the chain the connection's client presented, leaf first, DER (empty: it sent none). */
  verify(chain: readonly Buffer[], nowMs: number): CallerVerdict;
}

/**
 * TLS material of the gRPC listener, from whatever owns it (the Workload API, files, a test). The server
 * asks for it once, applies each change with setSecureContext (existing connections keep their
 * handshake), and runs `callers` once per connection.
 */
export interface ServerTLS {
  /** Current key, certificate chain and client CAs; null until the first material arrives. */
  contextOptions(): SecureContextOptions | null;
  /** Called with new material on each rotation. */
  onContextChange(listener: (options: SecureContextOptions) => void): void;
  /** Ask for, and require, a client certificate. */
  readonly requireClientCertificate: boolean;
  /** Absent: a certificate the TLS layer accepts is enough. */
  readonly callers?: CallerCheck;
}
