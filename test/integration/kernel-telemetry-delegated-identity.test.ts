import type { Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock';
import { DelegatedIdentityClient } from '../../src/identity/delegated-identity-client';
import { DelegatedBindings, type DelegatedBinding } from '../../src/kerneltelemetry/delegated-bindings';
import { startKernelTelemetry, type KernelTelemetry } from '../../src/kerneltelemetry/kernel-telemetry';
import { createLogger } from '../../src/telemetry/logger';
import { Metrics } from '../../src/telemetry/metrics';
import { startCgroupClient, type CgroupClient } from '../helpers/bpf-client';
import { startEchoServer } from '../helpers/bpf-envoy';
import {
  createCgroupTree,
  parseMetrics,
  recordingDecisionLog,
  requireTelemetryBPF,
  telemetrySettings,
} from '../helpers/kernel-telemetry-fixtures';
import { logSink } from '../helpers/log-sink';
import { SPIRE, waitFor } from '../helpers/spire-harness';

const TD = 'example.org';
const VERDICT_ID = `spiffe://${TD}/verdict`;
// Three workloads, told apart by the agent's unix attestor: each runs as its own uid.
const WORKLOADS = { one: 40001, two: 40002, three: 40003, four: 40004 } as const;
const idOf = (w: keyof typeof WORKLOADS): string => `spiffe://${TD}/workload-${w}`;
const STATIC_ID = `spiffe://${TD}/from-the-table`;
const STALENESS_MS = 2000;
const DELEGATED = {
  enabled: true,
  pidsPerCgroup: 2,
  pidCheckIntervalMs: 100,
  reconnectInitialMs: 50,
  reconnectMaxMs: 500,
  stalenessMs: STALENESS_MS,
};

/**
 * The real SPIRE server and agent (admin socket, authorized_delegates), real processes under distinct uids in
 * their own cgroups, the real kernel programs: the cgroup → SPIFFE ID binding comes from the agent's
 * Delegated Identity API, and the metrics carry it.
 */
describe('kernel telemetry: cgroups bound to SPIFFE IDs by the SPIRE agent (Delegated Identity API)', () => {
  const spire = new SPIRE({ trustDomain: TD, authorizedDelegates: [VERDICT_ID] });
  const sink = logSink();
  const metrics = new Metrics({ defaultMetrics: false });
  const clients: CgroupClient[] = [];
  let tree: ReturnType<typeof createCgroupTree>;
  let telemetry: KernelTelemetry;
  let echo: Server;
  let echoPort = 0;

  const sample = async (): Promise<Map<string, number>> => parseMetrics(`${await metrics.registry.metrics()}${telemetry.metricsText()}`);
  const established = (m: Map<string, number>, id: string): number =>
    m.get(`verdict_kernel_connections_established_total{spiffe_id="${id}",destination="127.0.0.1:${echoPort}"}`) ?? 0;
  const bindingOf = (cgroup: 'a' | 'b'): DelegatedBinding | undefined =>
    telemetry.status().delegatedIdentity?.cgroups.find((c) => c.cgroupPath === tree.child[cgroup]!.path)?.binding;
  const boundTo = (cgroup: 'a' | 'b', id: string): boolean => {
    const b = bindingOf(cgroup);
    return b?.kind === 'bound' && b.spiffeId === id;
  };
  const client = async (cgroup: 'a' | 'b' | 'c' | 's', uid?: number): Promise<CgroupClient & { pid: number }> => {
    const c = await startCgroupClient(tree.child[cgroup]!, uid === undefined ? {} : { uid });
    clients.push(c);
    return c;
  };
  const connect = async (c: CgroupClient, times: number): Promise<void> => {
    for (let i = 0; i < times; i++)
      expect((await c.connect({ src: '127.0.0.1', host: '127.0.0.1', port: echoPort })).outcome).toBe('echoed');
  };
  const streamErrors = async (code: string): Promise<number> =>
    (await sample()).get(`verdict_kernel_identity_stream_errors_total{code="${code}"}`) ?? 0;

  beforeAll(async () => {
    requireTelemetryBPF();
    try {
      await spire.start();
      // The test process is verdict here (root): its entry is the authorized delegate.
      await spire.registerEntry(VERDICT_ID, ['unix:uid:0']);
      for (const [w, uid] of Object.entries(WORKLOADS)) await spire.registerEntry(idOf(w as keyof typeof WORKLOADS), [`unix:uid:${uid}`]);
      // Until the agent has synced verdict's entry it refuses ("no identity issued"): start once it has one.
      await waitFor('the agent issues verdict its SVID', async () => (await spire.fetchX509ID()) === VERDICT_ID, 60_000, 250);
    } catch (err) {
      throw new Error(`SPIRE did not start: ${(err as Error).message}\n${spire.tail()}`);
    }
    tree = createCgroupTree('ktdi', ['a', 'b', 'c', 's']);
    telemetry = startKernelTelemetry(
      telemetrySettings(tree.parent.path, {
        identities: [
          { cgroupPath: tree.child.a!.path, delegatedIdentity: true },
          { cgroupPath: tree.child.b!.path, delegatedIdentity: true },
          { cgroupPath: tree.child.s!.path, spiffeId: STATIC_ID },
        ],
        delegatedIdentity: {
          ...DELEGATED,
          socket: `unix://${spire.adminSocket}`,
        },
        drift: { enabled: false, windowMs: 60_000, graceMs: 0, maxTracked: 1000, maxEventsPerRead: 100 },
      }),
      { clock: systemClock, logger: createLogger('info', sink.stream), metrics, decisionLog: recordingDecisionLog(), workerSlot: null },
    );
    ({ server: echo, port: echoPort } = await startEchoServer());
  }, 120_000);

  afterAll(async () => {
    for (const c of clients) await c.close();
    telemetry?.close();
    echo?.close();
    tree?.parent.remove();
    await spire.stop();
  });

  it('binds each cgroup to the ID SPIRE issues to its process, and its connections carry that spiffe_id', async () => {
    const [a, b] = [await client('a', WORKLOADS.one), await client('b', WORKLOADS.two)];
    // The agent learns new entries on its next sync (~5 s): poll the binding, not the clock.
    await waitFor('both cgroups bound by the agent', () => boundTo('a', idOf('one')) && boundTo('b', idOf('two')), 60_000);
    expect(telemetry.status().delegatedIdentity?.cgroups.find((c) => c.cgroupPath === tree.child.a!.path)?.pids).toEqual([a.pid]);
    await connect(a, 2);
    await connect(b, 3);
    const m = await sample();
    expect(established(m, idOf('one'))).toBe(2);
    expect(established(m, idOf('two'))).toBe(3);
    expect(established(m, 'unknown')).toBe(0);
    expect(m.get('verdict_kernel_identity_cgroups{state="bound"}')).toBe(2);
  }, 90_000);

  it('re-binds a cgroup whose workload exits and is replaced by another one', async () => {
    await clients[0]!.close(); // workload one, in cgroup a
    // Its PID left the cgroup: the stream is closed and the cgroup is bound to nothing until a new process answers.
    await waitFor('cgroup a unbound once its process exited', () => bindingOf('a')?.kind === 'none', 10_000);
    const replacement = await client('a', WORKLOADS.three);
    await waitFor('cgroup a re-bound to the replacement', () => boundTo('a', idOf('three')), 30_000);
    await connect(replacement, 4);
    const m = await sample();
    expect(established(m, idOf('three'))).toBe(4);
    expect(established(m, idOf('one'))).toBe(2);
  }, 60_000);

  it('attributes a cgroup whose processes hold different IDs to unknown, with ERR_KERNEL_IDENTITY_AMBIGUOUS', async () => {
    const before = established(await sample(), 'unknown');
    const intruder = await client('a', WORKLOADS.two);
    await waitFor('cgroup a ambiguous', () => bindingOf('a')?.kind === 'ambiguous', 30_000);
    expect(bindingOf('a')).toEqual({ kind: 'ambiguous', spiffeIds: [idOf('three'), idOf('two')].sort() });
    expect(sink.lines.some((l) => (l as { code?: string }).code === 'ERR_KERNEL_IDENTITY_AMBIGUOUS')).toBe(true);
    await connect(intruder, 1);
    const m = await sample();
    expect(established(m, 'unknown') - before).toBe(1);
    expect(established(m, idOf('three'))).toBe(4);
    await intruder.close();
    await waitFor('cgroup a bound again once the other process left', () => boundTo('a', idOf('three')), 10_000);
  }, 60_000);

  it('discards an answer about a PID that has exited since it was asked about, and stops following that PID', async () => {
    // Checks every minute only: the one check that can notice the exit in time is the one on each answer.
    const published: DelegatedBinding[] = [];
    const outcomes: string[] = [];
    const agent = new DelegatedIdentityClient({ socket: spire.adminSocket, reconnectInitialMs: 50, reconnectMaxMs: 500 });
    const worker = await client('c', WORKLOADS.four);
    const bindings = new DelegatedBindings({ ...DELEGATED, socket: spire.adminSocket, pidCheckIntervalMs: 60_000 }, [tree.child.c!.path], {
      client: agent,
      clock: systemClock,
      logger: createLogger('silent'),
      publish: (_path, b) => published.push(b),
      streamError: () => {},
      updateSeen: (outcome) => outcomes.push(outcome),
    });
    try {
      bindings.start();
      await waitFor(
        'cgroup c bound to workload four',
        () => JSON.stringify(published.at(-1)) === JSON.stringify({ kind: 'bound', spiffeId: idOf('four') }),
        30_000,
      );
      await worker.close();
      // A second entry for the same uid: the agent sends the open stream an update, now about an exited PID.
      await spire.registerEntry(`spiffe://${TD}/workload-four-again`, [`unix:uid:${WORKLOADS.four}`]);
      await waitFor('the late answer discarded', () => outcomes.includes('discarded'), 30_000);
      expect(bindings.status().cgroups[0]).toMatchObject({ pids: [], binding: { kind: 'none' } });
      expect(published.at(-1)).toEqual({ kind: 'none' });
      expect(published.some((b) => b.kind === 'ambiguous')).toBe(false);
    } finally {
      bindings.close();
      agent.close();
    }
  }, 90_000);

  it('keeps IDs through an agent outage for stalenessMs only, then the cgroup is unknown', async () => {
    const stoppedAt = Date.now();
    await spire.stopAgent();
    await waitFor('the stream error counted', async () => (await streamErrors('ERR_DELEGATED_IDENTITY_STREAM')) > 0, 10_000);
    await waitFor('cgroup b unbound after stalenessMs', () => bindingOf('b')?.kind === 'none', 20_000);
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(STALENESS_MS);
  }, 60_000);

  it('an agent that refuses verdict (not an authorized delegate) is a coded log line and a metric; the table still applies', async () => {
    spire.setAuthorizedDelegates([`spiffe://${TD}/someone-else`]);
    await spire.startAgent();
    await waitFor('the refusal counted', async () => (await streamErrors('ERR_DELEGATED_IDENTITY_REFUSED')) > 0, 30_000);
    const refusal = sink.lines.find((l) => (l as { code?: string }).code === 'ERR_DELEGATED_IDENTITY_REFUSED');
    expect(refusal).toMatchObject({ level: 'error' });
    expect((refusal as { detail?: string }).detail).toMatch(/PERMISSION_DENIED: caller not configured as an authorized delegate/);
    expect(bindingOf('a')?.kind).toBe('none');
    expect(bindingOf('b')?.kind).toBe('none');
    // The configured row keeps working, and delegated cgroups' traffic is unknown, never a stale ID.
    const before = await sample();
    const fromTable = await client('s');
    await connect(fromTable, 2);
    await connect(clients[1]!, 1); // workload two, in cgroup b
    const m = await sample();
    expect(established(m, STATIC_ID)).toBe(2);
    expect(established(m, 'unknown') - established(before, 'unknown')).toBe(1);
    expect(established(m, idOf('two'))).toBe(3);
  }, 90_000);
});
