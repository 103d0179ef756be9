import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningVerdict } from '../../src/main';
import { packageRoot } from '../../src/package-root';
import { startCgroupClient, waitFor, type CgroupClient } from '../helpers/bpf-client';
import { startEchoServer, startL4Envoy, type L4Envoy } from '../helpers/bpf-envoy';
import { createTestCgroup, requireBPF, testPinDir, type TestCgroup } from '../helpers/bpf-kernel';
import { buildTestBundle, startTestVerdict } from '../helpers/verdict-harness';

const L4_KEY = [
  'attributes.source.address.socketAddress.address',
  'attributes.destination.address.socketAddress.address',
  'attributes.destination.address.socketAddress.portValue',
];
const manifest = (revision: string): string =>
  JSON.stringify({ revision, roots: ['envoy'], metadata: { verdict: { cache: { key: L4_KEY, ttlMs: 60_000, denyTtlMs: 60_000 } } } });
const policy = (denied: string[]): string => `package envoy.authz
import rego.v1
default allow := false
denied := ${JSON.stringify(denied)}
allow if not input.attributes.source.address.socketAddress.address in denied
`;

const HOT_HITS = 3;
const DENIED_SRC = '127.0.0.66';

/**
 * Real kernel, real Envoy (network ext_authz → verdict → tcp_proxy), real sockets from a client process in
 * its own cgroup v2 group. Sources are distinct 127.0.0.x addresses bound before connect().
 */
describe('kernel fast path behind Envoy L4 ext_authz', () => {
  let cgroup: TestCgroup;
  let pinDir: string;
  let verdict: RunningVerdict;
  let envoy: L4Envoy;
  let echo: Server;
  let client: CgroupClient;
  let allowAllBundle: string;

  beforeAll(async () => {
    requireBPF();
    cgroup = createTestCgroup('envoy');
    pinDir = testPinDir('envoy');
    const denyBundle = await buildTestBundle({ '.manifest': manifest('deny-66'), 'authz.rego': policy([DENIED_SRC]) });
    allowAllBundle = await buildTestBundle({ '.manifest': manifest('allow-all'), 'authz.rego': policy([]) });
    const up = await startEchoServer();
    echo = up.server;
    verdict = await startTestVerdict([
      `policy.bundle=${denyBundle}`,
      'fastpath.enabled=true',
      'fastpath.required=true',
      `fastpath.cgroupPath=${cgroup.path}`,
      `fastpath.pinPath=${pinDir}`,
      `fastpath.hotHits=${HOT_HITS}`,
    ]);
    envoy = await startL4Envoy(verdict.grpcPort, up.port);
    client = await startCgroupClient(cgroup);
  });

  afterAll(async () => {
    await client?.close();
    await envoy?.stop();
    await verdict?.stop();
    echo?.close();
    cgroup?.remove();
    // verdict.stop() closed the fast path, which removes its own pins.
    if (pinDir) expect(existsSync(pinDir)).toBe(false);
  });

  const decisions = async (): Promise<number> => (await verdict.metrics.decisions.get()).values.reduce((n, v) => n + v.value, 0);
  const kernel = () => verdict.fastpath.status().counters ?? { hitAllow: 0, hitDeny: 0, miss: 0, stale: 0 };
  const connect = (src: string) => client.connect({ src, host: '127.0.0.1', port: envoy.port });
  /** Drives `src` through the full path until its verdict is live in the kernel map. */
  const makeHot = async (src: string, expected: 'echoed' | 'closed'): Promise<void> => {
    for (let i = 0; i < HOT_HITS; i++) expect((await connect(src)).outcome).toBe(expected);
    await waitFor(() => liveFor(src), `a live kernel entry for ${src}`);
  };
  const liveFor = (src: string): boolean => verdict.fastpath.dump(1000).some((e) => e.src === src && e.state === 'live');
  const dump = (): { src: string; action: string; state: string }[] =>
    JSON.parse(cli(['fastpath', 'dump', '--json'])) as { src: string; action: string; state: string }[];
  const cli = (args: string[]): string =>
    execFileSync(
      process.execPath,
      [
        join(packageRoot(), 'dist', 'src', 'cli', 'main.js'),
        ...args,
        '--set',
        `fastpath.pinPath=${pinDir}`,
        '--set',
        `fastpath.cgroupPath=${cgroup.path}`,
      ],
      {
        encoding: 'utf8',
      },
    );

  it('a miss goes through Envoy and verdict', async () => {
    const before = { checks: await decisions(), envoy: await envoy.extAuthzStats(), kernel: kernel() };
    const r = await connect('127.0.0.20');
    expect(r.outcome).toBe('echoed');
    expect(await decisions()).toBe(before.checks + 1);
    expect((await envoy.extAuthzStats()).ok).toBe((before.envoy.ok ?? 0) + 1);
    expect(kernel().miss).toBeGreaterThan(before.kernel.miss);
  });

  it('a hot deny is refused in the kernel: EPERM, no Check, no ext_authz call', async () => {
    await makeHot(DENIED_SRC, 'closed');
    const before = { checks: await decisions(), envoy: await envoy.extAuthzStats(), kernel: kernel() };
    const r = await connect(DENIED_SRC);
    expect(r).toMatchObject({ outcome: 'refused', code: 'EPERM' });
    expect(await decisions()).toBe(before.checks);
    expect(await envoy.extAuthzStats()).toEqual(before.envoy);
    expect(kernel().hitDeny).toBe(before.kernel.hitDeny + 1);
  });

  it('a hot allow proceeds (and is still authorized by Envoy + verdict)', async () => {
    await makeHot('127.0.0.21', 'echoed');
    const before = kernel();
    expect((await connect('127.0.0.21')).outcome).toBe('echoed');
    expect(kernel().hitAllow).toBe(before.hitAllow + 1);
    expect(dump().find((e) => e.src === '127.0.0.21')?.action).toBe('allow');
  });

  it('fastpath status reports the attached programs, generation and counters', () => {
    const status = JSON.parse(cli(['fastpath', 'status', '--json'])) as {
      attached: { attachType: string }[];
      generation: string;
      liveEntries: number;
      counters: { hitDeny: number };
    };
    expect(status.attached.map((p) => p.attachType).sort()).toEqual(['connect4', 'connect6']);
    expect(status.generation).toBe(verdict.fastpath.status().generation);
    expect(status.liveEntries).toBeGreaterThanOrEqual(2);
    expect(status.counters.hitDeny).toBeGreaterThanOrEqual(1);
  });

  it('/metrics carries the kernel counters and the enabled gauge', async () => {
    const text = await verdict.metrics.registry.metrics();
    expect(text).toContain('verdict_fastpath_enabled{reason="ENABLED"} 1');
    expect(text).toMatch(/verdict_fastpath_kernel_lookups\{outcome="hitDeny"\} [1-9]/);
    expect(text).toMatch(/verdict_fastpath_map_writes_total\{op="put",outcome="ok"\} [1-9]/);
  });

  it('a bundle swap flips enforcement at once (generation bump)', async () => {
    expect(liveFor(DENIED_SRC)).toBe(true);
    const generation = verdict.fastpath.status().generation;
    await verdict.policy.activateFile(allowAllBundle);
    expect(verdict.fastpath.status().generation).not.toBe(generation);
    const before = kernel();
    const r = await connect(DENIED_SRC);
    expect(r.outcome).toBe('echoed');
    expect(kernel().stale).toBe(before.stale + 1);
  });
});
