import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock';
import type { Decision } from '../../src/decision/decision';
import type { DecisionRecord } from '../../src/decisionlog/decision-record';
import { EnabledKernelTelemetry, startKernelTelemetry, type KernelTelemetry } from '../../src/kerneltelemetry/kernel-telemetry';
import { createLogger } from '../../src/telemetry/logger';
import { Metrics } from '../../src/telemetry/metrics';
import { startCgroupClient, waitFor, type CgroupClient } from '../helpers/bpf-client';
import { startEchoServer } from '../helpers/bpf-envoy';
import { loadTestMap, requireBPF } from '../helpers/bpf-kernel';
import {
  connectSweepBinary,
  createCgroupTree,
  listenOverflows,
  parseMetrics,
  recordingDecisionLog,
  requireTelemetryBPF,
  runSweep,
  startFullQueueListener,
  telemetrySettings,
} from '../helpers/kernel-telemetry-fixtures';

const ID_A = 'spiffe://test.example/workload-a';
const ID_B = 'spiffe://test.example/workload-b';

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

/** A port nothing listens on: bound once to learn a free number, then closed (the kernel answers SYNs with RST). */
async function closedPort(): Promise<number> {
  const s = createServer();
  const port = await listen(s);
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** The allow decision verdict's pipeline hands its observers for a Check from `spiffeId` to the destination. */
function allowRecord(spiffeId: string, port: number): [DecisionRecord, Decision] {
  const input = {
    attributes: {
      source: { address: { socketAddress: { address: '127.0.0.1', portValue: 40000 } } },
      destination: { address: { socketAddress: { address: '127.0.0.1', portValue: port } } },
    },
    spiffe: { id: spiffeId, expires_at: new Date(Date.now() + 3_600_000).toISOString() },
  };
  const record: DecisionRecord = {
    decision_id: 'd-1',
    timestamp: new Date().toISOString(),
    protocol: 'grpc',
    input,
    allowed: true,
    http_status: 200,
    reason: 'ALLOWED',
    cached: false,
    fastpath: false,
    timings_ns: { total: 1 },
  };
  return [record, { id: 'd-1', allowed: true, reason: 'ALLOWED', httpStatus: 200 }];
}

/** Workloads in two cgroups with known identities, real sockets, the real kernel programs. */
describe('kernel telemetry: per identity and destination, from the kernel', () => {
  let tree: ReturnType<typeof createCgroupTree>;
  let telemetry: KernelTelemetry;
  let metrics: Metrics;
  const log = recordingDecisionLog();
  let clients: Record<'a' | 'b', CgroupClient>;
  let echo: Server;
  let resetter: Server;
  const ports = { echo: 0, reset: 0, closed: 0 };

  // What /metrics serves (src/main.ts): the registry, then the per-series families.
  const sample = async (): Promise<Map<string, number>> => parseMetrics(`${await metrics.registry.metrics()}${telemetry.metricsText()}`);
  const labels = (id: string, port: number, extra = ''): string => `{spiffe_id="${id}",destination="127.0.0.1:${port}"${extra}}`;

  beforeAll(async () => {
    requireTelemetryBPF();
    tree = createCgroupTree('kt', ['a', 'b']);
    metrics = new Metrics({ defaultMetrics: false });
    telemetry = startKernelTelemetry(
      telemetrySettings(tree.parent.path, {
        identities: [
          { cgroupPath: tree.child.a!.path, spiffeId: ID_A },
          { cgroupPath: tree.child.b!.path, spiffeId: ID_B },
        ],
        drift: { enabled: true, windowMs: 60_000, graceMs: 0, maxTracked: 1000, maxEventsPerRead: 100 },
      }),
      { clock: systemClock, logger: createLogger('silent'), metrics, decisionLog: log, workerSlot: null },
    );
    ({ server: echo, port: ports.echo } = await startEchoServer());
    // Accepts, then answers with a RST (SO_LINGER 0): an established connection reset by its peer.
    resetter = createServer((s: Socket) => s.resetAndDestroy());
    ports.reset = await listen(resetter);
    ports.closed = await closedPort();
    clients = { a: await startCgroupClient(tree.child.a!), b: await startCgroupClient(tree.child.b!) };
  });

  afterAll(async () => {
    await clients?.a.close();
    await clients?.b.close();
    telemetry?.close();
    echo?.close();
    resetter?.close();
    tree?.parent.remove();
  });

  // `code` is what the client saw: ECONNREFUSED (RST to the SYN), ECONNRESET (RST after the handshake).
  const plan: { name: string; who: 'a' | 'b'; port: keyof typeof ports; times: number; code: string | undefined }[] = [
    { name: 'a: established to the echo server', who: 'a', port: 'echo', times: 3, code: undefined },
    { name: 'a: closed port (RST to the SYN)', who: 'a', port: 'closed', times: 2, code: 'ECONNREFUSED' },
    { name: 'a: a listener that resets', who: 'a', port: 'reset', times: 1, code: 'ECONNRESET' },
    { name: 'b: established to the echo server', who: 'b', port: 'echo', times: 1, code: undefined },
    { name: 'b: closed port', who: 'b', port: 'closed', times: 4, code: 'ECONNREFUSED' },
  ];

  it('counts attempts, handshakes, refusals and resets exactly, per spiffe_id and destination', async () => {
    // verdict allowed a → echo only; b → echo and a → resetter were never allowed.
    telemetry.observer!.observe(...allowRecord(ID_A, ports.echo));
    for (const step of plan)
      for (let i = 0; i < step.times; i++) {
        const r = await clients[step.who].connect({ src: '127.0.0.1', host: '127.0.0.1', port: ports[step.port] });
        expect(r.code, step.name).toBe(step.code);
        if (step.code === undefined) expect(r.outcome, step.name).toBe('echoed');
      }
    // Resets are counted when the socket reaches CLOSE, which the client saw before answering.
    const m = await sample();
    const expected: [string, number][] = [
      [`verdict_kernel_connect_attempts_total${labels(ID_A, ports.echo)}`, 3],
      [`verdict_kernel_connections_established_total${labels(ID_A, ports.echo)}`, 3],
      [`verdict_kernel_connections_refused_total${labels(ID_A, ports.echo, ',by="peer"')}`, 0],
      [`verdict_kernel_connect_attempts_total${labels(ID_A, ports.closed)}`, 2],
      [`verdict_kernel_connections_established_total${labels(ID_A, ports.closed)}`, 0],
      [`verdict_kernel_connections_refused_total${labels(ID_A, ports.closed, ',by="peer"')}`, 2],
      [`verdict_kernel_connections_refused_total${labels(ID_A, ports.closed, ',by="fastpath"')}`, 0],
      [`verdict_kernel_connect_attempts_total${labels(ID_A, ports.reset)}`, 1],
      [`verdict_kernel_connections_established_total${labels(ID_A, ports.reset)}`, 1],
      [`verdict_kernel_connections_reset_total${labels(ID_A, ports.reset)}`, 1],
      [`verdict_kernel_connect_attempts_total${labels(ID_B, ports.echo)}`, 1],
      [`verdict_kernel_connections_established_total${labels(ID_B, ports.echo)}`, 1],
      [`verdict_kernel_connect_attempts_total${labels(ID_B, ports.closed)}`, 4],
      [`verdict_kernel_connections_refused_total${labels(ID_B, ports.closed, ',by="peer"')}`, 4],
    ];
    for (const [series, value] of expected) expect(m.get(series), series).toBe(value);
    // The histogram's total is the handshake count of each series.
    for (const [id, port, n] of [
      [ID_A, ports.echo, 3],
      [ID_A, ports.closed, 0],
      [ID_B, ports.echo, 1],
    ] as const) {
      expect(m.get(`verdict_kernel_handshake_seconds_count${labels(id, port)}`)).toBe(n);
      expect(m.get(`verdict_kernel_handshake_seconds_bucket${labels(id, port, ',le="+Inf"')}`)).toBe(n);
    }
    // Bytes and RTT come from the socket at CLOSE: each echo connection sent and got back "ping\n" (5 bytes;
    // sequence space adds the SYN and the FIN, one each, when they were acknowledged before the close).
    const bytes = (id: string, port: number, dir: string): number =>
      m.get(`verdict_kernel_bytes_total${labels(id, port, `,direction="${dir}"`)}`) ?? NaN;
    for (const dir of ['sent', 'received']) {
      expect(bytes(ID_A, ports.echo, dir), dir).toBeGreaterThanOrEqual(3 * 5);
      expect(bytes(ID_A, ports.echo, dir), dir).toBeLessThanOrEqual(3 * 7);
      expect(bytes(ID_B, ports.echo, dir), dir).toBeGreaterThanOrEqual(5);
      expect(bytes(ID_B, ports.echo, dir), dir).toBeLessThanOrEqual(7);
    }
    // One RTT sample per closed established connection; loopback RTTs are positive and far below 10 ms.
    expect(m.get(`verdict_kernel_srtt_seconds_count${labels(ID_A, ports.echo)}`)).toBe(3);
    expect(m.get(`verdict_kernel_srtt_seconds_count${labels(ID_A, ports.closed)}`)).toBe(0);
    const srtt = m.get(`verdict_kernel_srtt_seconds_sum${labels(ID_A, ports.echo)}`) ?? NaN;
    expect(srtt).toBeGreaterThan(0);
    expect(srtt).toBeLessThan(3 * 0.01);
    // Loopback handshakes are far below 1 ms.
    expect(m.get(`verdict_kernel_handshake_seconds_bucket${labels(ID_A, ports.echo, ',le="0.001048576"')}`)).toBe(3);
    // Nothing from the test process itself (outside the cgroups) or from other identities.
    expect(
      [...m.keys()].filter((k) => k.startsWith('verdict_kernel_connect_attempts_total') && !k.includes(ID_A) && !k.includes(ID_B)),
    ).toEqual([]);
  });

  it('drift: established connections with no allow decision are unexplained for their identity; the allowed ones are not', async () => {
    const m = await sample();
    // a: 1 (the resetter, never allowed; the 3 echo connections were allowed). b: 1 (echo, never allowed for b).
    expect(m.get(`verdict_kernel_unexplained_connections_total{spiffe_id="${ID_A}"}`)).toBe(1);
    expect(m.get(`verdict_kernel_unexplained_connections_total{spiffe_id="${ID_B}"}`)).toBe(1);
    const observations = log.records.filter((r) => r.kind === 'observation');
    expect(observations.map((r) => r.observation)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          signal: 'unexplained_connection',
          spiffe_id: ID_A,
          connections: 1,
          destination: expect.objectContaining({ port: ports.reset }),
        }),
        expect.objectContaining({
          signal: 'unexplained_connection',
          spiffe_id: ID_B,
          connections: 1,
          destination: expect.objectContaining({ port: ports.echo }),
        }),
      ]),
    );
    expect(observations).toHaveLength(2);
    expect(observations.every((r) => r.reason === 'ERR_KERNEL_UNEXPLAINED_CONNECTION' && r.protocol === 'kernel')).toBe(true);
  });

  it('a connect the fast path refuses (EPERM, no SYN) is counted as refused by="fastpath", not as a handshake', async () => {
    // The fast path on a's own cgroup runs before telemetry on the parent (descendants' programs run first).
    const fastpath = loadTestMap(requireBPF(), tree.child.a!.path);
    const target = await startEchoServer();
    try {
      fastpath.setGeneration(7n);
      fastpath.write([
        {
          srcAddress: '127.0.0.1',
          dstAddress: '127.0.0.1',
          dstPort: target.port,
          action: 'deny',
          generation: 7n,
          expiresNs: fastpath.kernelNowNs() + 60_000_000_000n,
        },
      ]);
      for (let i = 0; i < 2; i++)
        expect(await clients.a.connect({ src: '127.0.0.1', host: '127.0.0.1', port: target.port })).toMatchObject({
          outcome: 'refused',
          code: 'EPERM',
        });
      // b's cgroup has no fast path: the same destination connects.
      expect(await clients.b.connect({ src: '127.0.0.1', host: '127.0.0.1', port: target.port })).toMatchObject({ outcome: 'echoed' });
      const m = await sample();
      expect(m.get(`verdict_kernel_connect_attempts_total${labels(ID_A, target.port)}`)).toBe(2);
      expect(m.get(`verdict_kernel_connections_refused_total${labels(ID_A, target.port, ',by="fastpath"')}`)).toBe(2);
      expect(m.get(`verdict_kernel_connections_established_total${labels(ID_A, target.port)}`)).toBe(0);
      expect(m.get(`verdict_kernel_connections_refused_total${labels(ID_B, target.port, ',by="fastpath"')}`)).toBe(0);
      expect(m.get(`verdict_kernel_connections_established_total${labels(ID_B, target.port)}`)).toBe(1);
    } finally {
      fastpath.close();
      target.server.close();
    }
  });

  it('a SYN dropped by a full accept queue is retransmitted after the 1 s RTO: the handshake lands in the (0.537 s, 1.074 s] bucket', async () => {
    const listener = await startFullQueueListener();
    const filler: Socket = createConnection({ host: '127.0.0.1', port: listener.port });
    try {
      // The filler (from outside the cgroups, not counted) takes the only accept-queue slot.
      await new Promise<void>((resolve) => filler.once('connect', () => resolve()));
      filler.write('x');
      const overflowsBefore = listenOverflows();
      const pending = clients.a.connect({ src: '127.0.0.1', host: '127.0.0.1', port: listener.port });
      // Wait for the drop itself, then free the queue: the retransmitted SYN is the one that gets through.
      await waitFor(() => listenOverflows() > overflowsBefore, 'the SYN to be dropped (ListenOverflows)');
      listener.release();
      const r = await pending;
      expect(r.outcome).toBe('echoed');
      expect(r.elapsedNs).toBeGreaterThan(0.9e9);
      const m = await sample();
      const l = (extra = ''): string => labels(ID_A, listener.port, extra);
      expect(m.get(`verdict_kernel_connections_established_total${l()}`)).toBe(1);
      expect(m.get(`verdict_kernel_handshake_seconds_bucket${l(',le="0.536870912"')}`)).toBe(0);
      expect(m.get(`verdict_kernel_handshake_seconds_bucket${l(',le="1.073741824"')}`)).toBe(1);
      expect(m.get(`verdict_kernel_handshake_seconds_count${l()}`)).toBe(1);
      expect(m.get(`verdict_kernel_retransmits_total${l()}`)).toBeGreaterThanOrEqual(1);
    } finally {
      filler.destroy();
      listener.stop();
    }
  });
});

describe('kernel telemetry bounds: 100k distinct destinations', () => {
  it('the kernel map stays at its bound, a read stops at its cap, and series stay at identities × (topN + 1)', async () => {
    requireTelemetryBPF();
    const tree = createCgroupTree('ktbounds', ['w']);
    const metrics = new Metrics({ defaultMetrics: false });
    const telemetry = startKernelTelemetry(
      telemetrySettings(tree.parent.path, {
        maxEntries: 4096,
        readMaxEntries: 1000,
        topDestinations: 5,
        identities: [{ cgroupPath: tree.child.w!.path, spiffeId: ID_A }],
      }),
      { clock: systemClock, logger: createLogger('silent'), metrics, decisionLog: recordingDecisionLog(), workerSlot: null },
    );
    try {
      const port = await closedPort();
      const sweep = await runSweep(connectSweepBinary(), tree.child.w!, 100_000, port, 'distinct');
      expect(sweep).toEqual({ ok: 0, failed: 100_000 });
      telemetry.refresh(true);
      const status = (telemetry as EnabledKernelTelemetry).status();
      expect(status.lastRead).toMatchObject({ entries: 1000, complete: false });
      const m = parseMetrics(`${await metrics.registry.metrics()}${telemetry.metricsText()}`);
      expect(m.get('verdict_kernel_reads_total{outcome="truncated"}')).toBeGreaterThanOrEqual(1);
      const series = telemetry.series();
      expect(series.length).toBe(6);
      expect(series.filter((s) => s.destination === 'other')).toHaveLength(1);
      // Every read aggregate is accounted for: 1000 aggregates, 1 attempt each.
      expect(series.reduce((n, s) => n + s.stats.attempts, 0)).toBe(1000);
      // 100k sockets through 65,536 socket slots: each slot is freed at CLOSE, so none was taken from a followed socket.
      expect(status.health).toEqual({ statsFull: 0, noStorage: 0, displaced: 0 });
      // The kernel map holds no more than its bound: a read without the cap finds at most maxEntries.
      const full = (telemetry as EnabledKernelTelemetry).readAll(1_000_000);
      expect(full.count).toBeLessThanOrEqual(4096);
      expect(full.count).toBeGreaterThan(1000);
    } finally {
      telemetry.close();
      tree.parent.remove();
    }
  }, 120_000);
});
