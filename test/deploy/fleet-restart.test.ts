import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnVerdict, type VerdictProcess } from '../../loadtest/lib/spawn-verdict';
import { packageRoot } from '../../src/package-root';
import { clusterHosts } from '../helpers/envoy-cluster-hosts';
import type { RunningEnvoy } from '../helpers/envoy-process';
import { printEnvoyLogsOnFailure, startEnvoyFor } from '../helpers/envoy-stack';
import { startPacedLoad, type LoadTally } from '../helpers/paced-load';
import { waitFor } from '../helpers/wait-for';

// Three `verdict serve` processes (the built CLI, one process each) behind one real Envoy
// (envoy/fleet-grpc.yaml: ext_authz over gRPC with active grpc.health.v1 checks, outlier detection and a
// retry policy), under ~1,000 HTTP requests/s, each of which costs one Check.
//  - Rolling SIGTERM restart of every replica: zero failed requests. The drain window (health NOT_SERVING
//    while still answering) is seen by Envoy before each replica stops; the few Checks that still meet a
//    closing connection are retried (counted in the report).
//  - kill -9 of one replica: the retry policy re-sends what hit the dead replica; the failures the client
//    sees are counted and bounded.

const RATE = 1000;
const HC_INTERVAL_MS = 250;
// More than one health-check interval plus its timeout: Envoy has seen NOT_SERVING before the listener closes.
const DRAIN_WINDOW_MS = 1500;
const REPLICA_ARGS = [
  '--set',
  'server.workers=1',
  '--set',
  `server.drainWindowMs=${DRAIN_WINDOW_MS}`,
  '--set',
  'server.shutdownGraceMs=2000',
  '--set',
  'log.level=info',
];

describe('a fleet of three replicas behind Envoy', () => {
  const replicas: VerdictProcess[] = [];
  const ports: number[] = [];
  let envoy: RunningEnvoy;
  printEnvoyLogsOnFailure(() => [envoy]);

  const spawnReplica = (port: number): Promise<VerdictProcess> =>
    spawnVerdict(packageRoot(), [...REPLICA_ARGS, '--set', `server.grpc.port=${port}`]);
  const host = (i: number): string => `127.0.0.1:${ports[i]}`;
  const hostStatus = async (i: number): Promise<{ healthFlags: string; rqSuccess: number }> =>
    (await clusterHosts(envoy.adminPort, 'verdict')).get(host(i)) ?? { healthFlags: 'absent', rqSuccess: 0 };
  const allHealthy = async (): Promise<boolean> =>
    [...(await clusterHosts(envoy.adminPort, 'verdict')).values()].filter((h) => h.healthFlags === 'healthy').length === 3;

  beforeAll(async () => {
    for (let i = 0; i < 3; i++) {
      const r = await spawnReplica(0);
      replicas.push(r);
      ports.push(r.grpcPort);
    }
    envoy = await startEnvoyFor('fleet-grpc.yaml', {
      LISTENER_PORT: 0,
      AUTHZ_TIMEOUT: '5s',
      // Generous for a shared 2-core host: a slow answer must not look like a lost replica.
      PER_TRY_TIMEOUT: '2s',
      HC_INTERVAL: `${HC_INTERVAL_MS / 1000}s`,
      HC_NO_TRAFFIC_INTERVAL: `${HC_INTERVAL_MS / 1000}s`,
      VERDICT_PORT_A: ports[0]!,
      VERDICT_PORT_B: ports[1]!,
      VERDICT_PORT_C: ports[2]!,
    });
    await waitFor(allHealthy, 'Envoy to see all three replicas healthy', 20_000, 50);
  }, 120_000);

  afterAll(async () => {
    await envoy?.stop();
    await Promise.all(replicas.map((r) => r.kill('SIGKILL')));
  });

  async function report(what: string, t: LoadTally): Promise<void> {
    const text = await (await fetch(`http://127.0.0.1:${envoy.adminPort}/stats`)).text();
    const stats = text
      .split('\n')
      .filter(
        (l) =>
          /^(cluster\.verdict\.(upstream_rq_|upstream_cx_(connect_fail|destroy)|outlier)|http\.ingress_http\.ext_authz)/.test(l) &&
          /: [1-9]\d*$/.test(l),
      );
    console.log(
      `${what}: offered ${RATE}/s, sent ${t.sent} in ${t.durationMs} ms (${Math.round((t.sent * 1000) / t.durationMs)}/s), ok ${t.ok}, ` +
        `failed ${t.failedTotal} ${JSON.stringify(t.failed)}, held back by the in-flight cap ${t.skipped}; Envoy (cumulative): ${stats.join(', ')}`,
    );
  }
  // The client keeps at most this many requests outstanding: on a host too busy for the offered rate it
  // holds sends back (counted) instead of queueing them into timeouts, so a failure means a lost Check.
  const MAX_IN_FLIGHT = 48;

  it('rolling SIGTERM restart of every replica: 0 failed requests', async () => {
    const port = envoy.listenerPort('ingress_http');
    const retriesBefore = await envoy.stat('cluster.verdict.upstream_rq_retry');
    const load = startPacedLoad({ port, ratePerSec: RATE, path: '/healthz', maxDurationMs: 90_000, maxInFlight: MAX_IN_FLIGHT });
    await waitFor(() => load.tally().ok >= 500, 'the load to warm up', 20_000, 20);
    for (let i = 0; i < 3; i++) {
      const old = replicas[i]!;
      const stopped = old.stop();
      let exited = false;
      void stopped.then(() => (exited = true));
      // The drain window at work: Envoy marks the replica unhealthy while its process is still up.
      await waitFor(
        async () => (await hostStatus(i)).healthFlags.includes('failed_active_hc'),
        `replica ${i} NOT_SERVING in Envoy`,
        10_000,
        20,
      );
      expect(exited).toBe(false);
      await stopped;
      replicas[i] = await spawnReplica(ports[i]!);
      expect(replicas[i]!.pid).not.toBe(old.pid);
      await waitFor(async () => (await hostStatus(i)).healthFlags === 'healthy', `replica ${i} healthy again`, 20_000, 20);
      const served = (await hostStatus(i)).rqSuccess;
      await waitFor(async () => (await hostStatus(i)).rqSuccess > served + 100, `traffic back on replica ${i}`, 20_000, 20);
    }
    const t = await load.stop();
    const retries = (await envoy.stat('cluster.verdict.upstream_rq_retry')) - retriesBefore;
    await report('rolling restart', t);
    // The restarts happened under load (at the rate offered, or as close as this host allowed:
    // `skipped` counts sends the client held back with 256 requests outstanding).
    expect(t.sent).toBeGreaterThan(3000);
    expect(t.failed).toEqual({});
    expect(t.ok).toBe(t.sent);
    // Retries are allowed (a Check pending on a connection that closed) but stay rare: under 5% of Checks.
    expect(retries).toBeLessThan(t.sent / 20);
  }, 180_000);

  it('kill -9 of one replica: the retry policy re-sends its Checks; failures counted and bounded', async () => {
    const port = envoy.listenerPort('ingress_http');
    const retriesBefore = await envoy.stat('cluster.verdict.upstream_rq_retry');
    const load = startPacedLoad({ port, ratePerSec: RATE, path: '/healthz', maxDurationMs: 60_000, maxInFlight: MAX_IN_FLIGHT });
    await waitFor(() => load.tally().ok >= 500, 'the load to warm up', 20_000, 20);
    const sentAtKill = load.tally().sent;
    await replicas[1]!.kill('SIGKILL');
    await waitFor(async () => (await hostStatus(1)).healthFlags !== 'healthy', 'Envoy to take the dead replica out', 10_000, 20);
    // Two thousand more requests on the two survivors.
    await waitFor(() => load.tally().sent >= sentAtKill + 2000, 'load after the kill', 30_000, 20);
    const t = await load.stop();
    const retries = (await envoy.stat('cluster.verdict.upstream_rq_retry')) - retriesBefore;
    await report('kill -9', t);
    replicas[1] = await spawnReplica(ports[1]!);
    // The retry policy did the work: Checks that met the dead replica were sent again.
    expect(retries).toBeGreaterThan(0);
    // A request fails only when all 1 + num_retries (2) attempts fail (each on another replica, by
    // previous_hosts) or the retry budget is spent: at most the Checks in flight when the replica died.
    expect(t.failedTotal).toBeLessThanOrEqual(MAX_IN_FLIGHT);
    expect(t.ok + t.failedTotal).toBe(t.sent);
  }, 120_000);
});
