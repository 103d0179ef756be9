import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock';
import type { VerdictError } from '../../src/errors';
import { DelegatedIdentityClient, type DelegatedX509SVID } from '../../src/identity/delegated-identity-client';
import { WorkloadAPIClient } from '../../src/identity/workload-api-client';
import { recordingLogger } from '../helpers/recording-logger';
import { SPIRE, waitFor } from '../helpers/spire-harness';

/**
 * A Workload API whose streams never send their first message, from a real SPIRE agent frozen with SIGSTOP
 * (its socket still accepts connections; nothing answers on them). Start-up must be bounded and coded: each
 * silent stream is refused with ERR_WORKLOAD_API after firstMessageTimeoutMs and reopened, so once the agent
 * runs again verdict gets its bundles without a restart.
 */
// verdict's own entry is an authorized delegate, for the Delegated Identity API case.
const spire = new SPIRE({ authorizedDelegates: ['spiffe://example.org/verdict'] });
const clients: WorkloadAPIClient[] = [];

beforeAll(async () => {
  await spire.start();
  await spire.registerWorkload('spiffe://example.org/verdict');
  await waitFor('the entry to reach the agent', async () => (await spire.fetchX509ID()) === 'spiffe://example.org/verdict', 60_000, 500);
}, 180_000);

afterAll(async () => {
  for (const c of clients) c.close();
  try {
    spire.resumeAgent();
  } catch {
    // already stopped
  }
  await spire.stop();
});

describe('a Workload API that never sends its first message', () => {
  it('each silent stream is refused with ERR_WORKLOAD_API within firstMessageTimeoutMs and reopened; after SIGCONT verdict becomes ready', async () => {
    spire.pauseAgent();
    const { logger } = recordingLogger();
    const client = new WorkloadAPIClient({
      socket: `unix://${spire.agentSocket}`,
      clock: systemClock,
      logger,
      reconnectInitialMs: 50,
      reconnectMaxMs: 200,
      bundleStalenessMs: 60_000,
      fetchX509SVID: false,
      firstMessageTimeoutMs: 1_000,
    });
    clients.push(client);
    const refused: [string, VerdictError][] = [];
    client.on('refused', (stream: string, err: VerdictError) => refused.push([stream, err]));
    const startedMs = performance.now();
    client.start();
    await waitFor('both streams to be refused as silent, twice each', () => refused.length >= 4, 20_000, 50);
    // Refusals come at the bound, not sooner, and the client tried again (a second refusal per stream).
    expect(performance.now() - startedMs).toBeGreaterThanOrEqual(1_000);
    expect(new Set(refused.map(([s]) => s))).toEqual(new Set(['x509Bundles', 'jwtBundles']));
    expect(refused.every(([, e]) => e.code === 'ERR_WORKLOAD_API' && /sent no message within 1000 ms/.test(e.message))).toBe(true);
    expect(client.isReady()).toBe(false);

    spire.resumeAgent();
    await waitFor('verdict to become ready once the agent answers', () => client.isReady(), 30_000, 100);
    expect(client.bundleForTrustDomain('example.org')?.x509Authorities.length).toBeGreaterThan(0);
  }, 60_000);

  it('an agent that freezes after it delivered is seen by an unanswered keepalive PING: the streams go down (coded), the bundles go stale, then recover', async () => {
    const { logger, lines } = recordingLogger();
    const client = new WorkloadAPIClient({
      socket: `unix://${spire.agentSocket}`,
      clock: systemClock,
      logger,
      reconnectInitialMs: 50,
      reconnectMaxMs: 200,
      bundleStalenessMs: 1_000,
      fetchX509SVID: false,
      keepaliveTimeMs: 1_000,
    });
    clients.push(client);
    client.start();
    await waitFor('verdict to become ready', () => client.isReady(), 30_000, 50);
    spire.pauseAgent();
    await waitFor('the frozen agent to make verdict unready', () => !client.isReady(), 30_000, 50);
    const down = lines.filter((l) => l.msg.includes('stream down')).map((l) => l.fields as { code: string; why: string });
    expect(down.length).toBeGreaterThan(0);
    expect(down.every((d) => d.code === 'ERR_WORKLOAD_API')).toBe(true);
    spire.resumeAgent();
    await waitFor('verdict to be ready again once the agent runs', () => client.isReady(), 30_000, 100);
  }, 90_000);

  it("the Delegated Identity API's stream ends coded (ERR_DELEGATED_IDENTITY_STREAM) when the agent sends no first message; once it runs, a new one is answered", async () => {
    spire.pauseAgent();
    const client = new DelegatedIdentityClient({
      socket: `unix://${spire.adminSocket}`,
      reconnectInitialMs: 50,
      reconnectMaxMs: 200,
      firstMessageTimeoutMs: 1_000,
    });
    try {
      const startedMs = performance.now();
      const down = await new Promise<VerdictError>((resolve, reject) =>
        client.subscribeX509SVIDs(process.pid, { update: () => reject(new Error('a frozen agent answered')), down: resolve }),
      );
      expect(performance.now() - startedMs).toBeGreaterThanOrEqual(1_000);
      expect(down.code).toBe('ERR_DELEGATED_IDENTITY_STREAM');
      expect(down.message).toMatch(/sent no message within 1000 ms/);
      spire.resumeAgent();
      // This process is verdict: the agent attests it and answers with its SVIDs.
      const svids = await new Promise<DelegatedX509SVID[]>((resolve, reject) => {
        const stream = client.subscribeX509SVIDs(process.pid, {
          update: (s) => {
            stream.cancel();
            resolve(s);
          },
          down: reject,
        });
      });
      expect(svids.map((s) => s.spiffeId)).toContain('spiffe://example.org/verdict');
    } finally {
      client.close();
    }
  }, 60_000);
});
