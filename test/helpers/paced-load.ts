import { Agent, request } from 'node:http';

export interface LoadTally {
  sent: number;
  ok: number;
  /** Non-200 answers by status, and transport errors under 'error'. */
  failed: Record<string, number>;
  failedTotal: number;
  /** Sends that were due but skipped because maxInFlight requests were outstanding (client-side backpressure). */
  skipped: number;
  durationMs: number;
}

export interface PacedLoad {
  tally(): LoadTally;
  /** Stops sending and resolves once every outstanding request has settled. */
  stop(): Promise<LoadTally>;
}

export interface PacedLoadOptions {
  port: number;
  ratePerSec: number;
  path?: string;
  /** Hard cap on the run, so a test that forgets to stop it still ends. */
  maxDurationMs: number;
  maxInFlight?: number;
  timeoutMs?: number;
}

/**
 * Open-loop HTTP/1.1 load at a fixed rate through keep-alive connections: each 5 ms tick sends what the
 * elapsed time calls for, so a slow answer never slows the offered rate (failures are not hidden by a
 * client that waits). Bounded in time and in outstanding requests.
 */
export function startPacedLoad(o: PacedLoadOptions): PacedLoad {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const t: LoadTally = { sent: 0, ok: 0, failed: {}, failedTotal: 0, skipped: 0, durationMs: 0 };
  const maxInFlight = o.maxInFlight ?? 256;
  const started = Date.now();
  let inFlight = 0;
  let stopped = false;
  let settle: (() => void) | null = null;
  const fail = (why: string): void => {
    t.failed[why] = (t.failed[why] ?? 0) + 1;
    t.failedTotal++;
  };
  const done = (): void => {
    inFlight--;
    if (stopped && inFlight === 0) settle?.();
  };
  const sendOne = (): void => {
    inFlight++;
    t.sent++;
    const req = request({ host: '127.0.0.1', port: o.port, path: o.path ?? '/', agent, timeout: o.timeoutMs ?? 5000 }, (res) => {
      res.resume();
      res.on('end', () => {
        if (res.statusCode === 200) t.ok++;
        else fail(String(res.statusCode));
        done();
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => {
      fail('error');
      done();
    });
    req.end();
  };
  const timer = setInterval(() => {
    const elapsed = Date.now() - started;
    if (elapsed >= o.maxDurationMs) return void finish();
    const due = Math.floor((elapsed * o.ratePerSec) / 1000) - t.sent - t.skipped;
    for (let i = 0; i < due; i++) {
      if (inFlight >= maxInFlight) t.skipped++;
      else sendOne();
    }
  }, 5);
  let finished: Promise<LoadTally> | null = null;
  const finish = (): Promise<LoadTally> => {
    finished ??= new Promise<LoadTally>((resolve) => {
      stopped = true;
      clearInterval(timer);
      t.durationMs = Date.now() - started;
      settle = () => {
        agent.destroy();
        resolve({ ...t, failed: { ...t.failed } });
      };
      if (inFlight === 0) settle();
    });
    return finished;
  };
  return { tally: () => ({ ...t, failed: { ...t.failed } }), stop: finish };
}
