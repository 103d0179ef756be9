import type { Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KernelVerdictMap } from '../../src/fastpath/kernel-verdict-map';
import type { KernelAction } from '../../src/fastpath/map-layout';
import { startCgroupClient, waitFor, type CgroupClient } from '../helpers/bpf-client';
import { startEchoServer } from '../helpers/bpf-envoy';
import { createTestCgroup, loadTestMap, requireBPF, type TestCgroup } from '../helpers/bpf-kernel';

const GEN = 42n;

/** The kernel programs on their own: real maps, real connect() from a client in a test cgroup v2 group. */
describe('kernel verdict map and connect programs', () => {
  let cgroup: TestCgroup;
  let map: KernelVerdictMap;
  let client: CgroupClient;
  let echo: Server;
  let echo6: Server;
  let port: number;
  let port6: number;

  beforeAll(async () => {
    const addon = requireBPF();
    cgroup = createTestCgroup('kernel');
    map = loadTestMap(addon, cgroup.path);
    map.setGeneration(GEN);
    const up = await startEchoServer();
    echo = up.server;
    port = up.port;
    echo6 = (await import('node:net')).createServer((s) => s.pipe(s));
    await new Promise<void>((resolve) => echo6.listen(0, '::1', resolve));
    port6 = (echo6.address() as { port: number }).port;
    client = await startCgroupClient(cgroup);
  });

  afterAll(async () => {
    await client?.close();
    map?.close();
    echo?.close();
    echo6?.close();
    cgroup?.remove();
  });

  const put = (src: string, action: KernelAction, ttlMs: number, generation = GEN, dst = '127.0.0.1', dstPort = port): void => {
    map.write([
      { srcAddress: src, dstAddress: dst, dstPort, action, generation, expiresNs: map.kernelNowNs() + BigInt(Math.round(ttlMs * 1e6)) },
    ]);
  };
  const connect = (src: string) => client.connect({ src, host: '127.0.0.1', port });

  const cases: {
    name: string;
    src: string;
    entry?: { action: KernelAction; ttlMs: number; generation?: bigint };
    outcome: string;
    counter: string;
  }[] = [
    { name: 'no entry: miss, connect proceeds', src: '127.0.1.1', outcome: 'echoed', counter: 'miss' },
    { name: 'current deny: EPERM', src: '127.0.1.2', entry: { action: 'deny', ttlMs: 60_000 }, outcome: 'refused', counter: 'hitDeny' },
    {
      name: 'current allow: proceeds',
      src: '127.0.1.3',
      entry: { action: 'allow', ttlMs: 60_000 },
      outcome: 'echoed',
      counter: 'hitAllow',
    },
    { name: 'expired deny: ignored', src: '127.0.1.4', entry: { action: 'deny', ttlMs: -1 }, outcome: 'echoed', counter: 'stale' },
    {
      name: 'deny of an older generation: ignored',
      src: '127.0.1.5',
      entry: { action: 'deny', ttlMs: 60_000, generation: GEN - 1n },
      outcome: 'echoed',
      counter: 'stale',
    },
  ];
  it.each(cases)('$name', async ({ src, entry, outcome, counter }) => {
    if (entry) put(src, entry.action, entry.ttlMs, entry.generation);
    const before = map.counters();
    const r = await connect(src);
    expect(r.outcome).toBe(outcome);
    if (outcome === 'refused') expect(r.code).toBe('EPERM');
    expect(map.counters()[counter as keyof typeof before]).toBe(before[counter as keyof typeof before] + 1);
  });

  it('a stale entry is removed from the map by the kernel', async () => {
    put('127.0.1.6', 'deny', -1);
    expect(map.entries(1024).some((e) => e.srcAddress === '127.0.1.6')).toBe(true);
    await connect('127.0.1.6');
    expect(map.entries(1024).some((e) => e.srcAddress === '127.0.1.6')).toBe(false);
  });

  it('a deny stops being enforced when it expires', async () => {
    put('127.0.1.7', 'deny', 300);
    expect((await connect('127.0.1.7')).outcome).toBe('refused');
    await waitFor(async () => (await connect('127.0.1.7')).outcome === 'echoed', 'the deny to expire');
  });

  it('one generation write retires every entry at once', async () => {
    put('127.0.1.8', 'deny', 60_000);
    expect((await connect('127.0.1.8')).outcome).toBe('refused');
    map.setGeneration(GEN + 1n);
    try {
      expect((await connect('127.0.1.8')).outcome).toBe('echoed');
    } finally {
      map.setGeneration(GEN);
    }
  });

  it('IPv6 (connect6): a current deny is EPERM', async () => {
    put('::1', 'deny', 60_000, GEN, '::1', port6);
    const r = await client.connect({ src: '::1', host: '::1', port: port6 });
    expect(r).toMatchObject({ outcome: 'refused', code: 'EPERM' });
  });

  it('the map bound holds under 100k distinct pairs (LRU keeps the newest)', () => {
    const bounded = loadTestMap(requireBPF(), null, 4096);
    try {
      const batch = 5000;
      for (let start = 0; start < 100_000; start += batch) {
        const entries = Array.from({ length: batch }, (_, i) => {
          const n = start + i;
          return {
            srcAddress: `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`,
            dstAddress: '10.255.0.1',
            dstPort: 8080,
            action: 'deny' as const,
            generation: GEN,
            expiresNs: bounded.kernelNowNs() + 60_000_000_000n,
          };
        });
        bounded.write(entries);
      }
      const held = bounded.entries(200_000);
      expect(held.length).toBeLessThanOrEqual(4096);
      expect(held.length).toBeGreaterThan(1024);
      // The last pair written (n = 99999 → 10.1.134.159) is among the survivors.
      expect(held.some((e) => e.srcAddress === '10.1.134.159')).toBe(true);
    } finally {
      bounded.close();
    }
  });
});
