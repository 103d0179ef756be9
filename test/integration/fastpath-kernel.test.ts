import { once } from 'node:events';
import type { Server } from 'node:net';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KernelVerdictMap } from '../../src/fastpath/kernel-verdict-map';
import { KEY_LAYOUT, VALUE_LAYOUT, writeKey, writeValue, type KernelAction } from '../../src/fastpath/map-layout';
import { addonPath, bpfObjectPath } from '../../src/fastpath/native-addon';
import { loadTelemetryAddon, telemetryObjectPath } from '../../src/kerneltelemetry/telemetry-addon';
import { KernelTelemetryMaps } from '../../src/kerneltelemetry/telemetry-maps';
import { startCgroupClient, waitFor, type CgroupClient } from '../helpers/bpf-client';
import { startEchoServer } from '../helpers/bpf-envoy';
import { requireTelemetryBPF } from '../helpers/kernel-telemetry-fixtures';
import { createTestCgroup, loadTestMap, removeTestPins, requireBPF, testPinDir, type TestCgroup } from '../helpers/bpf-kernel';

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

describe('reading the kernel verdict map while it changes', () => {
  const dir = testPinDir('churn');
  afterAll(() => removeTestPins(dir));

  it('a dump while another thread deletes and re-adds every entry returns each key at most once, and never more than the map holds', async () => {
    const addon = requireBPF();
    const count = 4096;
    const map = KernelVerdictMap.load(addon, { objectPath: bpfObjectPath(), maxEntries: 16384, pinDir: dir, cgroupPath: null });
    const keys = Buffer.alloc(count * KEY_LAYOUT.size);
    const values = Buffer.alloc(count * VALUE_LAYOUT.size);
    for (let i = 0; i < count; i++) {
      const e = {
        srcAddress: `10.9.${i >> 8}.${i & 255}`,
        dstAddress: '10.255.0.1',
        dstPort: 443,
        action: 'deny' as const,
        generation: GEN,
        expiresNs: 1n,
      };
      writeKey(e, keys, i * KEY_LAYOUT.size);
      writeValue(e, values, i * VALUE_LAYOUT.size);
    }
    // [0]: stop; [1]: delete-all/re-add-all cycles the worker completed, -1 when it failed.
    const shared = new Int32Array(new SharedArrayBuffer(8));
    const churner = new Worker(
      `const { workerData: w } = require('node:worker_threads');
       const flag = new Int32Array(w.shared);
       try {
         const addon = require(w.addonPath);
         const h = addon.openPinned(w.dir, 16384);
         addon.update(h, w.keys, w.values, w.count);
         while (Atomics.load(flag, 0) === 0) {
           addon.remove(h, w.keys, w.count);
           addon.update(h, w.keys, w.values, w.count);
           Atomics.add(flag, 1, 1);
           Atomics.notify(flag, 1);
         }
         addon.close(h);
       } catch (err) {
         Atomics.store(flag, 1, -1);
         Atomics.notify(flag, 1);
         throw err;
       }`,
      { eval: true, workerData: { addonPath: addonPath(), dir, count, keys, values, shared: shared.buffer } },
    );
    const exited = once(churner, 'exit');
    try {
      Atomics.wait(shared, 1, 0); // until the churn is under way (or failed)
      const until = Atomics.load(shared, 1) + 3;
      const dumps: { length: number; unique: number }[] = [];
      // Ten dumps back to back, and more until the churner has done three whole cycles meanwhile: its deletes hit the dumps' cursors.
      for (let done = Atomics.load(shared, 1); done >= 0 && (done < until || dumps.length < 10); done = Atomics.load(shared, 1)) {
        const held = map.entries(100_000);
        dumps.push({ length: held.length, unique: new Set(held.map((e) => e.srcAddress)).size });
      }
      if (Atomics.load(shared, 1) < 0) throw new Error('the churner failed'); // `await exited` below rejects with its error
      expect(dumps.length).toBeGreaterThan(0);
      expect(dumps.filter((d) => d.length !== d.unique || d.length > count)).toEqual([]);
    } finally {
      Atomics.store(shared, 0, 1);
      await exited;
      map.close();
    }
  });
});

describe('the programs `fastpath status` lists', () => {
  it("lists only the connect programs that use this verdict map: not another verdict's nor kernel telemetry's on the same cgroup", () => {
    const addon = requireBPF();
    requireTelemetryBPF();
    const cgroup = createTestCgroup('programs');
    const dir = testPinDir('programs');
    const telemetryAddon = loadTelemetryAddon();
    if ('reason' in telemetryAddon) throw new Error(telemetryAddon.reason);
    const maps: { close(): void }[] = [];
    try {
      const first = KernelVerdictMap.load(addon, { objectPath: bpfObjectPath(), maxEntries: 16, pinDir: dir, cgroupPath: cgroup.path });
      maps.push(first);
      const second = loadTestMap(addon, cgroup.path);
      maps.push(second);
      maps.push(
        KernelTelemetryMaps.load(telemetryAddon.addon, {
          objectPath: telemetryObjectPath(),
          maxEntries: 16,
          pinDir: null,
          cgroupPath: cgroup.path,
        }),
      );
      const viaPins = KernelVerdictMap.openPinned(addon, dir, cgroup.path, 16);
      maps.push(viaPins);
      const listed = (m: KernelVerdictMap): string[] => m.attachedPrograms().map((p) => `${p.attachType}:${p.id}`);
      const firstIds = listed(first);
      expect(firstIds.map((p) => p.split(':')[0]).sort()).toEqual(['connect4', 'connect6']);
      expect(listed(viaPins)).toEqual(firstIds);
      const secondIds = listed(second);
      expect(secondIds.map((p) => p.split(':')[0]).sort()).toEqual(['connect4', 'connect6']);
      expect(secondIds.filter((p) => firstIds.includes(p))).toEqual([]);
    } finally {
      for (const m of maps.reverse()) m.close();
      removeTestPins(dir);
      cgroup.remove();
    }
  });
});
