import * as grpc from '@grpc/grpc-js';
import { format } from 'node:util';
import type { Logger } from './logger';

/**
 * Routes grpc-js's own log (plain `E …` lines on stderr by default) into verdict's JSON log, so every
 * stderr line is JSON once logging starts. grpc-js logs through a console-like object: error/info/debug.
 * Its errors are logged at warn: the failure they describe reaches verdict as a coded error of its own.
 */
const REPORTED_BY_VERDICT = /^No address added out of total/;

export function routeGrpcLog(logger: Logger): void {
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
