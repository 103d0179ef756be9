import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import type { Config } from '../config/schema';
import { nativeAddonPath, requireNativeFunction } from '../native-module';
import type { Logger } from '../telemetry/logger';
import type { Metrics } from '../telemetry/metrics';

/** native/gc-marking.c: V8 starts incremental marking now (unless it is marking already). */
export interface GcMarkingAddon {
  start(bytes: number): void;
}

/** How often the cadence looks at the Checks received and the loop's load. */
export const GC_MARKING_TICK_MS = 100;
/** Above this event-loop utilization (over the last tick) V8's own cadence is left alone. */
export const GC_MARKING_MAX_LOOP_UTILIZATION = 0.5;

export function gcMarkingAddonPath(): string {
  return nativeAddonPath('gc_marking.node');
}

export function loadGcMarking(path = gcMarkingAddonPath()): { addon: GcMarkingAddon } | { reason: string } {
  return requireNativeFunction<GcMarkingAddon>(path, 'start');
}

/**
 * The external memory reported for an instant to start marking: past V8's 64 MiB soft limit with room for
 * native memory freed since the last full GC, and under a quarter of the heap limit, far from the half of
 * the old generation past which V8 would collect atomically (a long pause) instead of marking in steps.
 */
export function markingPressureBytes(heapSizeLimit = getHeapStatistics().heap_size_limit): number {
  return Math.min(256 * 1024 * 1024, Math.floor(heapSizeLimit / 4));
}

export interface GcMarkingDeps {
  /** Checks received so far (gRPC streams and HTTP authz requests), a running count. */
  received: () => number;
  loaded?: ReturnType<typeof loadGcMarking>;
  /** perf_hooks' eventLoopUtilization: a reading, or the difference of two (tests pass their own). */
  utilization?: (now?: EventLoopUtilization, before?: EventLoopUtilization) => EventLoopUtilization;
}

/**
 * A full-GC cadence bounded by Checks (docs/memory.md, section 9). Each Check leaves node:http2's header
 * values as external strings in the old generation, and the next full GC's pause finalizes them all; V8
 * starts that GC after 8 MiB of old-generation growth, ~4,500 Checks here, whatever the rate. Every
 * `server.gcMarkingEveryChecks` Checks, while the loop has room (utilization under 0.5), this starts V8's
 * incremental marking itself, so that each full GC's pause covers at most that many Checks. A busy loop
 * keeps V8's own cadence: the marking costs the same per full GC, and at saturation latency is queueing.
 * Returns the function that stops it.
 */
export function startGcMarking(config: Config, logger: Logger, metrics: Metrics, deps: GcMarkingDeps): () => void {
  const every = config.server.gcMarkingEveryChecks;
  if (every === 0) return () => {};
  const loaded = deps.loaded ?? loadGcMarking();
  if ('reason' in loaded) {
    logger.info(
      { reason: loaded.reason },
      'GC marking cadence off: longer full-GC pauses under load (server.gcMarkingEveryChecks=0 silences this)',
    );
    return () => {};
  }
  const utilization = deps.utilization ?? ((now, before) => performance.eventLoopUtilization(now, before));
  const bytes = markingPressureBytes();
  let lastStart = deps.received();
  let lastLoop = utilization();
  const timer = setInterval(() => {
    const now = utilization();
    const load = utilization(now, lastLoop).utilization;
    lastLoop = now;
    const received = deps.received();
    if (received - lastStart < every || load >= GC_MARKING_MAX_LOOP_UTILIZATION) return;
    lastStart = received;
    try {
      loaded.addon.start(bytes);
    } catch (err) {
      clearInterval(timer);
      logger.warn({ err: { message: (err as Error).message } }, 'GC marking cadence failed; stopped');
      return;
    }
    metrics.gcMarkingStarts.inc();
  }, GC_MARKING_TICK_MS);
  timer.unref();
  return () => clearInterval(timer);
}
