/**
 * Kernel fast path, side by side in one run (root, real kernel, real Envoy, real sockets):
 *  1. time to refusal of a denied connection: kernel (connect → EPERM) vs the full path (Envoy L4 ext_authz →
 *     verdict → deny → Envoy closes), both measured inside the same client process in a test cgroup;
 *  2. connect latency of an allowed pair with the programs attached (hot allow entry) vs detached, plus the
 *     program's own run time per invocation from kernel.bpf_stats_enabled;
 *  3. map update throughput from Node: one batch call of 1024 entries vs one call per entry.
 * The client is loadtest/connect-probe.c (built here with cc): it times the syscalls themselves, so neither
 * side carries a JavaScript runtime's socket overhead.
 * Run: node dist/loadtest/bench-fastpath.js (after npm run build).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:net';
import { KernelVerdictMap } from '../src/fastpath/kernel-verdict-map';
import { bpfObjectPath } from '../src/fastpath/native-addon';
import type { RunningVerdict } from '../src/main';
import { waitFor } from '../test/helpers/bpf-client';
import { startEchoServer, startL4Envoy, type L4Envoy } from '../test/helpers/bpf-envoy';
import { createTestCgroup, removePinDir, requireBPF, testPinDir, type TestCgroup } from '../test/helpers/bpf-kernel';
import { buildTestBundle, startTestVerdict } from '../test/helpers/verdict-harness';
import { startConnectProbe } from './lib/connect-probe';
import { runAsScript } from './lib/run-as-script';

const ROUNDS = 300;
const DENIED = '127.0.3.66';
const KEY = [
  'attributes.source.address.socketAddress.address',
  'attributes.destination.address.socketAddress.address',
  'attributes.destination.address.socketAddress.portValue',
];

export async function run(): Promise<Record<string, unknown>> {
  const addon = requireBPF();
  const cgroup = createTestCgroup('bench');
  const pinDir = testPinDir('bench');
  const up = await startEchoServer();
  const cleanup: (() => Promise<void> | void)[] = [() => up.server.close(), () => cgroup.remove(), () => removePinDir(pinDir)];
  try {
    const refusal = await timeToRefusal(cgroup, pinDir, up.port, cleanup);
    const connect = await allowedConnectCost(addon, cgroup, up.server, up.port);
    const updates = mapUpdateThroughput(addon);
    const result = { refusal, connect, updates };
    printTable(result);
    return result;
  } finally {
    for (const c of cleanup.reverse()) await c();
  }
}

async function timeToRefusal(cgroup: TestCgroup, pinDir: string, upstreamPort: number, cleanup: (() => Promise<void> | void)[]) {
  const bundle = await buildTestBundle({
    '.manifest': JSON.stringify({ roots: ['envoy'], metadata: { verdict: { cache: { key: KEY, ttlMs: 60_000 } } } }),
    'authz.rego': `package envoy.authz\nimport rego.v1\ndefault allow := false\nallow if input.attributes.source.address.socketAddress.address != "${DENIED}"\n`,
  });
  const verdict: RunningVerdict = await startTestVerdict([
    `policy.bundle=${bundle}`,
    'fastpath.enabled=true',
    'fastpath.required=true',
    `fastpath.cgroupPath=${cgroup.path}`,
    `fastpath.pinPath=${pinDir}`,
    // Every full-path round counts toward hotness; the kernel takes over right after them.
    `fastpath.hotHits=${ROUNDS + 1}`,
  ]);
  cleanup.push(() => verdict.stop());
  const envoy: L4Envoy = await startL4Envoy(verdict.grpcPort, upstreamPort);
  cleanup.push(() => envoy.stop());
  const client = await startConnectProbe(cgroup);
  cleanup.push(() => client.close());
  const target = { src: DENIED, host: '127.0.0.1', port: envoy.port, mode: 'echo' as const };
  await client.connect({ ...target, src: '127.0.3.1' }); // warm Envoy's gRPC connection to verdict

  const full: number[] = [];
  for (let i = 0; i < ROUNDS; i++) full.push(expectOutcome(await client.connect(target), 'closed'));
  await client.connect(target); // the hit that makes it hot
  await waitFor(() => verdict.fastpath.dump(100).some((e) => e.src === DENIED && e.state === 'live'), 'the hot deny');
  const checksBefore = (await verdict.metrics.decisions.get()).values.reduce((n, v) => n + v.value, 0);
  const kernel: number[] = [];
  for (let i = 0; i < ROUNDS; i++) kernel.push(expectOutcome(await client.connect(target), 'refused'));
  const checksAfter = (await verdict.metrics.decisions.get()).values.reduce((n, v) => n + v.value, 0);
  const fullMedianUs = median(full) / 1e3;
  const kernelMedianUs = median(kernel) / 1e3;
  return {
    fullPathMedianUs: round(fullMedianUs),
    fullPathP99Us: round(pct(full, 0.99) / 1e3),
    kernelMedianUs: round(kernelMedianUs),
    kernelP99Us: round(pct(kernel, 0.99) / 1e3),
    ratio: round(fullMedianUs / kernelMedianUs),
    checksDuringKernelRounds: checksAfter - checksBefore,
  };
}

async function allowedConnectCost(addon: ReturnType<typeof requireBPF>, cgroup: TestCgroup, _server: Server, port: number) {
  const map = KernelVerdictMap.load(addon, { objectPath: bpfObjectPath(), maxEntries: 1024, pinDir: null, cgroupPath: null });
  const client = await startConnectProbe(cgroup);
  const statsWas = readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim();
  try {
    map.setGeneration(1n);
    const src = '127.0.4.1';
    map.write([
      {
        srcAddress: src,
        dstAddress: '127.0.0.1',
        dstPort: port,
        action: 'allow',
        generation: 1n,
        expiresNs: map.kernelNowNs() + 600_000_000_000n,
      },
    ]);
    const attached: number[] = [];
    const detached: number[] = [];
    writeFileSync('/proc/sys/kernel/bpf_stats_enabled', '1');
    // Interleaved blocks, so drift in machine load hits both sides alike.
    for (let block = 0; block < 10; block++) {
      map.attach(cgroup.path);
      for (let i = 0; i < ROUNDS / 10; i++)
        attached.push(expectOutcome(await client.connect({ src, host: '127.0.0.1', port, mode: 'connect' }), 'connected'));
      map.detach();
      for (let i = 0; i < ROUNDS / 10; i++)
        detached.push(expectOutcome(await client.connect({ src, host: '127.0.0.1', port, mode: 'connect' }), 'connected'));
    }
    const prog = map.programStats().find((p) => p.name === 'connect4');
    return {
      attachedMedianUs: round(median(attached) / 1e3),
      detachedMedianUs: round(median(detached) / 1e3),
      addedMedianUs: round((median(attached) - median(detached)) / 1e3),
      programRunNsPerConnect: prog && prog.runCount > 0 ? round(prog.runTimeNs / prog.runCount) : null,
      programRuns: prog?.runCount ?? 0,
      hitAllow: map.counters().hitAllow,
    };
  } finally {
    writeFileSync('/proc/sys/kernel/bpf_stats_enabled', statsWas);
    await client.close();
    map.close();
  }
}

function mapUpdateThroughput(addon: ReturnType<typeof requireBPF>) {
  const map = KernelVerdictMap.load(addon, { objectPath: bpfObjectPath(), maxEntries: 65_536, pinDir: null, cgroupPath: null });
  try {
    const entries = Array.from({ length: 1024 }, (_, n) => ({
      srcAddress: `10.9.${n >> 8}.${n & 255}`,
      dstAddress: '10.9.255.1',
      dstPort: 443,
      action: 'deny' as const,
      generation: 1n,
      expiresNs: 1n << 62n,
    }));
    const batches = 50;
    let t0 = process.hrtime.bigint();
    for (let b = 0; b < batches; b++) map.write(entries);
    const batchNs = Number(process.hrtime.bigint() - t0) / (batches * entries.length);
    t0 = process.hrtime.bigint();
    for (let b = 0; b < 10; b++) for (const e of entries) map.write([e]);
    const singleNs = Number(process.hrtime.bigint() - t0) / (10 * entries.length);
    return {
      batchedUsPerUpdate: round(batchNs / 1e3),
      batchedUpdatesPerSec: Math.round(1e9 / batchNs),
      singleCallUsPerUpdate: round(singleNs / 1e3),
      batchSpeedup: round(singleNs / batchNs),
    };
  } finally {
    map.close();
  }
}

function expectOutcome(r: { outcome: string; elapsedNs: number }, want: string): number {
  if (r.outcome !== want) throw new Error(`expected ${want}, got ${JSON.stringify(r)}`);
  return r.elapsedNs;
}
const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const pct = (xs: number[], p: number) => sorted(xs)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;
const median = (xs: number[]) => pct(xs, 0.5);
const round = (x: number) => Math.round(x * 100) / 100;

function printTable(r: Record<string, Record<string, unknown>>): void {
  for (const [section, values] of Object.entries(r)) {
    process.stdout.write(`\n${section}\n`);
    for (const [k, v] of Object.entries(values)) process.stdout.write(`  ${k.padEnd(28)} ${String(v)}\n`);
  }
}

runAsScript(module, run);
