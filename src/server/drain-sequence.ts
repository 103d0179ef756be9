/**
 * What a zero-loss stop needs of a running verdict, whatever its transports: turn health NOT_SERVING
 * (gRPC health, /readyz) while still answering, then stop (drain in-flight calls, close).
 */
export interface DrainTarget {
  /** Health checks fail from now on; Checks are still answered. Idempotent. */
  beginDrain(): void;
  stop(): Promise<void>;
}

export interface DrainOptions {
  /** How long to keep answering after health turned NOT_SERVING (config server.drainWindowMs). */
  windowMs: number;
  /** Injected for tests; resolves after ms. */
  wait?: (ms: number) => Promise<void>;
  onPhase?: (phase: 'not-serving' | 'stopping' | 'stopped') => void;
}

/**
 * SIGTERM sequence (docs/zero-loss-restarts.md): health NOT_SERVING first, so Envoy's active health checks
 * (and Kubernetes readiness) move new Checks to other replicas, while calls already routed here are still
 * answered for the window; only then stop accepting and drain within server.shutdownGraceMs.
 */
export async function drainThenStop(target: DrainTarget, options: DrainOptions): Promise<void> {
  target.beginDrain();
  options.onPhase?.('not-serving');
  if (options.windowMs > 0) await (options.wait ?? delay)(options.windowMs);
  options.onPhase?.('stopping');
  await target.stop();
  options.onPhase?.('stopped');
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
