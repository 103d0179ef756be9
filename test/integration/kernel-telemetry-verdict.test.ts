import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Server } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load-config';
import { startVerdict, type RunningVerdict } from '../../src/main';
import type { TelemetryReport } from '../../src/kerneltelemetry/telemetry-report';
import { packageRoot } from '../../src/package-root';
import { createLogger } from '../../src/telemetry/logger';
import { startCgroupClient, type CgroupClient } from '../helpers/bpf-client';
import { startEchoServer } from '../helpers/bpf-envoy';
import { testPinDir } from '../helpers/bpf-kernel';
import { createCgroupTree, parseMetrics, requireTelemetryBPF } from '../helpers/kernel-telemetry-fixtures';
import { checkClient, httpCheckRequest, type CheckClient } from '../helpers/verdict-harness';

const ID = 'spiffe://test.example/ns/shop/sa/frontend';

/** A whole verdict with kernel telemetry on: real Checks feed drift, /metrics carries the series, the CLI reads them. */
describe('kernel telemetry inside verdict', () => {
  let tree: ReturnType<typeof createCgroupTree>;
  let verdict: RunningVerdict;
  let check: CheckClient;
  let client: CgroupClient;
  let allowed: { server: Server; port: number };
  let bypass: { server: Server; port: number };
  const pinDir = testPinDir('ktverdict');

  beforeAll(async () => {
    requireTelemetryBPF();
    tree = createCgroupTree('ktverdict', ['frontend']);
    const config = validateConfig({
      server: { grpc: { port: 0 }, http: { port: 0 }, workers: 1 },
      log: { level: 'silent' },
      policy: { timeoutMs: 5000 },
      kernelTelemetry: {
        enabled: true,
        required: true,
        cgroupPath: tree.parent.path,
        pinPath: pinDir,
        pollIntervalMs: 0,
        minReadIntervalMs: 0,
        identities: [{ cgroupPath: tree.child.frontend!.path, spiffeId: ID }],
        drift: { graceMs: 0 },
      },
    });
    verdict = await startVerdict(config, { logger: createLogger('silent') });
    check = checkClient(`127.0.0.1:${verdict.grpcPort}`);
    allowed = await startEchoServer();
    bypass = await startEchoServer();
    client = await startCgroupClient(tree.child.frontend!);
  });

  afterAll(async () => {
    await client?.close();
    check?.close();
    await verdict?.stop();
    // A clean stop removes the pins it made.
    expect(existsSync(pinDir)).toBe(false);
    allowed?.server.close();
    bypass?.server.close();
    tree?.parent.remove();
  });

  it('a connection verdict allowed is explained; one that skipped the Envoy path is unexplained for its identity', async () => {
    // What Envoy in front of `allowed` would ask: the frontend (its peer principal) reaching that address and port.
    const request = httpCheckRequest({ path: '/healthz', principal: ID }) as { attributes: { destination: unknown } };
    request.attributes.destination = { address: { socketAddress: { address: '127.0.0.1', portValue: allowed.port } } };
    const res = await check.check(request);
    expect(res.status?.code ?? 0).toBe(0);

    expect(await client.connect({ src: '127.0.0.1', host: '127.0.0.1', port: allowed.port })).toMatchObject({ outcome: 'echoed' });
    expect(await client.connect({ src: '127.0.0.1', host: '127.0.0.1', port: bypass.port })).toMatchObject({ outcome: 'echoed' });

    const text = await (await fetch(`http://127.0.0.1:${verdict.httpPort}/metrics`)).text();
    const m = parseMetrics(text);
    expect(m.get('verdict_kernel_telemetry_enabled{reason="ENABLED"}')).toBe(1);
    expect(m.get(`verdict_kernel_connections_established_total{spiffe_id="${ID}",destination="127.0.0.1:${allowed.port}"}`)).toBe(1);
    expect(m.get(`verdict_kernel_connections_established_total{spiffe_id="${ID}",destination="127.0.0.1:${bypass.port}"}`)).toBe(1);
    expect(m.get(`verdict_kernel_unexplained_connections_total{spiffe_id="${ID}"}`)).toBe(1);
    expect(m.get('verdict_kernel_reads_total{outcome="complete"}')).toBe(1);
  });

  it('pins the aggregate maps for other tools (bpftool map dump pinned …/conn_stats)', () => {
    expect(['conn_stats', 'health'].map((m) => existsSync(join(pinDir, m)))).toEqual([true, true]);
  });

  it('`verdict fastpath telemetry` prints the top talkers and the unexplained connections', async () => {
    const url = `http://127.0.0.1:${verdict.httpPort}/metrics`;
    const run = (args: string[]) =>
      promisify(execFile)(process.execPath, [
        join(packageRoot(), 'bin', 'verdict.js'),
        'fastpath',
        'telemetry',
        '--metrics-url',
        url,
        ...args,
      ]);
    const json = JSON.parse((await run(['--json'])).stdout) as TelemetryReport;
    expect(json.talkers.map((t) => [t.spiffeId, t.destination, t.attempts, t.established])).toEqual(
      expect.arrayContaining([
        [ID, `127.0.0.1:${allowed.port}`, 1, 1],
        [ID, `127.0.0.1:${bypass.port}`, 1, 1],
      ]),
    );
    expect(json.unexplained).toEqual([{ spiffeId: ID, connections: 1 }]);
    const text = (await run(['--top', '1'])).stdout;
    expect(text).toContain('top talkers');
    expect(text.split('\n').filter((l) => l.includes(' -> '))).toHaveLength(1);
    expect(text).toMatch(new RegExp(`unexplained connections.*\\n  ${ID.replace(/[/.]/g, '\\$&')}  1\\n`));
  });
});
