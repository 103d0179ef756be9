import type * as GrpcJs from '@grpc/grpc-js';
import { format } from 'node:util';
import type { Logger } from './logger';

/**
 * Routes grpc-js's own log (plain `E …` lines on stderr by default) into verdict's JSON log, so every
 * stderr line is JSON once logging starts. grpc-js logs through a console-like object: error/info/debug.
 * Its errors are logged at warn: the failure they describe reaches verdict as a coded error of its own.
 *
 * grpc-js is only verdict's Workload API client and the reflection listener, so it is loaded on first use
 * (`grpcJs()`), not at start: a default `verdict serve` never loads it (docs/memory.md: ~4 MiB of heap).
 * The route is applied whenever grpc-js is loaded, before or after `routeGrpcLog`.
 */
const REPORTED_BY_VERDICT = /^No address added out of total/;

let routed: Logger | null = null;
let loaded: typeof GrpcJs | null = null;

export function routeGrpcLog(logger: Logger): void {
  routed = logger;
  if (loaded) applyRoute(loaded, logger);
}

/** grpc-js, loaded on first call, with the log route applied. */
export function grpcJs(): typeof GrpcJs {
  if (loaded) return loaded;
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on demand; see the file comment
  loaded = require('@grpc/grpc-js') as typeof GrpcJs;
  if (routed) applyRoute(loaded, routed);
  return loaded;
}

function applyRoute(grpc: typeof GrpcJs, logger: Logger): void {
  const log = logger.child({ component: 'grpc-js' });
  grpc.setLogger({
    error: (...args: unknown[]) => {
      const detail = format(...args);
      // A failed bind is reported once, by verdict, as ERR_LISTEN with the address and the key to change.
      if (REPORTED_BY_VERDICT.test(detail)) log.debug({ detail }, 'grpc-js');
      else log.warn({ detail }, 'grpc-js');
    },
    info: (...args: unknown[]) => log.info({ detail: format(...args) }, 'grpc-js'),
    debug: (...args: unknown[]) => log.debug({ detail: format(...args) }, 'grpc-js'),
  });
}
