import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningVerdict } from '../../src/main';
import { drainThenStop } from '../../src/server/drain-sequence';
import { healthCheck } from '../helpers/grpc-health';
import { checkClient, httpCheckRequest, startTestVerdict, type CheckClient } from '../helpers/verdict-harness';

// The SIGTERM sequence on a real verdict (grpc-js server, ops HTTP server, embedded default bundle): during
// the drain window health says NOT_SERVING on both grpc.health.v1 and /readyz while Checks are still
// answered; only when the window ends does the server stop. The window is a promise the test releases, so
// no timing is assumed.

const AUTHZ = 'envoy.service.auth.v3.Authorization';

describe('drain window: NOT_SERVING first, answer on, then stop', () => {
  let verdict: RunningVerdict;
  let client: CheckClient;
  let releaseWindow: () => void = () => undefined;
  let requestedWindowMs = -1;
  const phases: string[] = [];
  let stopped: Promise<void>;

  beforeAll(async () => {
    verdict = await startTestVerdict(['server.shutdownGraceMs=500']);
    client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
  });
  afterAll(async () => {
    client?.close();
    releaseWindow();
    await stopped;
  });

  it('serves before the drain', async () => {
    expect(await healthCheck(verdict.grpcPort, AUTHZ)).toBe('SERVING');
    expect((await fetch(`http://127.0.0.1:${verdict.httpPort}/readyz`)).status).toBe(200);
  });

  it('reports NOT_SERVING during the window and still answers Checks', async () => {
    const window = new Promise<void>((resolve) => (releaseWindow = resolve));
    stopped = drainThenStop(verdict, {
      windowMs: 5000,
      wait: (ms) => ((requestedWindowMs = ms), window),
      onPhase: (p) => phases.push(p),
    });
    expect(phases).toEqual(['not-serving']);
    expect(requestedWindowMs).toBe(5000);
    expect(await healthCheck(verdict.grpcPort, AUTHZ)).toBe('NOT_SERVING');
    expect(await healthCheck(verdict.grpcPort, '')).toBe('NOT_SERVING');
    expect((await fetch(`http://127.0.0.1:${verdict.httpPort}/readyz`)).status).toBe(503);
    const answered = await Promise.all(Array.from({ length: 20 }, () => client.check(httpCheckRequest({ path: '/healthz' }))));
    expect(answered.every((r) => r.status?.code === 0 && r.okResponse !== undefined)).toBe(true);
    expect(phases).toEqual(['not-serving']);
  });

  it('stops once the window ends: the listener is gone', async () => {
    releaseWindow();
    await stopped;
    expect(phases).toEqual(['not-serving', 'stopping', 'stopped']);
    await expect(healthCheck(verdict.grpcPort, AUTHZ)).rejects.toMatchObject({ code: 14 });
  });
});
