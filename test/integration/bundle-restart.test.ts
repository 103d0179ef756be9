import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BundleForge } from '../helpers/hostile-bundles';
import { tarGz } from '../helpers/tar-writer';
import { VerdictChild, type LogLine } from '../helpers/verdict-child';
import { checkClient, headerValue, httpCheckRequest, tempDir } from '../helpers/verdict-harness';

// Start-up is never ended by a bundle: a bad bundle at the source with a good persisted one serves the
// persisted one (said in a log line and a metric); with no good bundle at all verdict starts NOT_SERVING
// and is healed by a good bundle without a restart — in one process and in cluster mode.

/** The tar.gz that used to crash verdict before any signature check: an entry declaring more than it holds. */
const CRASHER = tarGz(
  [
    { name: '/.manifest', body: '{}' },
    { name: '/data.json', body: '{}', declaredSize: 4096 },
  ],
  { end: false },
);

async function revision(v: VerdictChild): Promise<string | undefined> {
  const client = checkClient(`127.0.0.1:${v.grpcPort}`);
  try {
    const res = await client.check(httpCheckRequest({ path: '/r' }));
    return headerValue(res.okResponse?.headers, 'x-bundle-rev') ?? `denied: ${String(res.status?.code)}`;
  } finally {
    client.close();
  }
}

describe('restarts with a bad bundle at the source', () => {
  let forge: BundleForge;
  let dir: string;
  let live: string;
  let running: VerdictChild | null = null;
  const publish = (bytes: Buffer): void => {
    writeFileSync(`${live}.tmp`, bytes);
    renameSync(`${live}.tmp`, live);
  };
  const start = async (extra: string[] = [], opts: { onLine?: (l: LogLine) => void } = {}): Promise<VerdictChild> => {
    running = await VerdictChild.start(
      ['bundles.source.type=file', `bundles.source.path=${live}`, 'bundles.source.debounceMs=20', ...forge.trustSets(), ...extra],
      opts,
    );
    return running;
  };

  beforeAll(async () => {
    forge = await BundleForge.create();
  }, 60_000);
  afterEach(async () => {
    await running?.stop();
    running = null;
  });

  it('serves the persisted good bundle, and says so in a log line and a metric', async () => {
    dir = tempDir('verdict-restart-persist-');
    live = join(dir, 'bundle.tar.gz');
    const persist = `bundles.persistDir=${join(dir, 'state')}`;
    publish(forge.good());
    const first = await start([persist]);
    expect(await revision(first)).toBe('GOOD');
    await first.stop();

    publish(CRASHER);
    const v = await start([persist]);
    expect(v.alive).toBe(true);
    expect(await revision(v)).toBe('GOOD');
    const said = await v.waitForLog((l) => String(l.msg).includes('serving the persisted last good bundle'), { seen: true });
    expect(said.code).toBe('ERR_BUNDLE_INVALID');
    expect(await v.metrics()).toContain('verdict_bundle_loads_total{outcome="persisted",reason="ERR_BUNDLE_INVALID"} 1');
    expect(await v.readyStatus()).toBe(200);
  }, 60_000);

  it('with no good bundle at all starts NOT_SERVING, then is healed by a good bundle without a restart', async () => {
    dir = tempDir('verdict-restart-none-');
    live = join(dir, 'bundle.tar.gz');
    publish(CRASHER);
    const v = await start();
    const pid = v.pid;
    expect(await v.readyStatus()).toBe(503);
    expect(await revision(v)).toMatch(/^denied/);
    const active = v.waitForLog((l) => l.msg === 'policy bundle active');
    publish(forge.good());
    await active;
    expect(await revision(v)).toBe('GOOD');
    expect(await v.readyStatus()).toBe(200);
    expect(v.pid).toBe(pid);
  }, 60_000);

  it('cluster mode: a worker that dies before it is ready does not stop the cluster; no bundle → NOT_SERVING, then healed', async () => {
    dir = tempDir('verdict-restart-cluster-');
    live = join(dir, 'bundle.tar.gz');
    publish(CRASHER);
    let killed = false;
    // A bundle can no longer kill a worker (that is the point), so the early death is injected: the first
    // worker is SIGKILLed the moment it is forked, before it can be ready.
    const v = await start(['server.workers=2'], {
      onLine: (l) => {
        if (killed || l.msg !== 'worker forked') return;
        killed = true;
        process.kill(l.pid as number, 'SIGKILL');
      },
    });
    expect(killed).toBe(true);
    expect(v.lines.some((l) => l.msg === 'worker died; restarting' && l.wasReady === false)).toBe(true);
    expect(v.alive).toBe(true);
    expect(await v.readyStatus()).toBe(503);
    let activeWorkers = 0;
    const bothActive = v.waitForLog((l) => l.msg === 'policy bundle active' && ++activeWorkers === 2);
    publish(forge.good());
    await bothActive;
    expect(await revision(v)).toBe('GOOD');
    expect(await v.readyStatus()).toBe(200);
    expect(v.alive).toBe(true);
  }, 90_000);
});
