import type { Config } from '../config/schema';
import { nativeAddonPath, requireNativeFunction } from '../native-module';
import type { Logger } from '../telemetry/logger';
import type { Metrics } from '../telemetry/metrics';

/** native/malloc-trim.c: glibc's malloc_trim(0) on a libuv pool thread (true when memory was returned). */
export interface MallocTrimAddon {
  trim(): Promise<boolean>;
}

export function mallocTrimAddonPath(): string {
  return nativeAddonPath('malloc_trim.node');
}

/** The addon, or why it cannot run here (not built, not glibc). */
export function loadMallocTrim(path = mallocTrimAddonPath()): { addon: MallocTrimAddon } | { reason: string } {
  return requireNativeFunction<MallocTrimAddon>(path, 'trim', 'the C library is not glibc');
}

/**
 * Every `server.mallocTrimIntervalMs`, hands glibc's malloc_trim(0) to the libuv pool (never the event
 * loop), one at a time. glibc gives back by itself only the free memory at the top of its heap; the
 * native memory of finished HTTP/2 streams and buffers, freed after a full GC, lies below live blocks
 * and stays resident without this (docs/memory.md, section 8). Returns the function that stops it.
 */
export function startMallocTrim(config: Config, logger: Logger, metrics: Metrics, loaded = loadMallocTrim()): () => void {
  const interval = config.server.mallocTrimIntervalMs;
  if (interval === 0) return () => {};
  if ('reason' in loaded) {
    logger.info({ reason: loaded.reason }, 'malloc trim off: RSS under load stays higher (server.mallocTrimIntervalMs=0 silences this)');
    return () => {};
  }
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    loaded.addon.trim().then(
      (released) => {
        running = false;
        metrics.mallocTrims.inc({ released: String(released) });
      },
      (err: unknown) => {
        clearInterval(timer);
        logger.warn({ err: { message: (err as Error).message } }, 'malloc trim failed; stopped');
      },
    );
  }, interval);
  timer.unref();
  return () => clearInterval(timer);
}
