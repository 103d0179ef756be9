import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { replayDecisionLog } from '../../src/decisionlog/replay';
import type { RunningVerdict } from '../../src/main';
import { readBundle } from '../../src/policy/bundle-reader';
import { engineFactory } from '../../src/policy/engine-registry';
import { waitFor } from '../helpers/decisionlog-fixtures';
import { buildTestBundle, checkClient, httpCheckRequest, startTestVerdict, tempDir, type CheckClient } from '../helpers/verdict-harness';

const run = promisify(execFile);
const cli = join(__dirname, '..', '..', 'bin', 'verdict.js');

/** The default policy with one change: health probes are no longer allowed. */
async function candidateBundle(): Promise<string> {
  const root = join(__dirname, '..', '..', 'policies', 'default');
  const data = JSON.parse(readFileSync(join(root, 'data.json'), 'utf8')) as { mesh: { allow: { id: string }[] } };
  data.mesh.allow = data.mesh.allow.filter((r) => r.id !== 'health-probes');
  return buildTestBundle({
    'authz.rego': readFileSync(join(root, 'authz.rego'), 'utf8'),
    'data.json': JSON.stringify(data),
    '.manifest': readFileSync(join(root, '.manifest'), 'utf8'),
  });
}

function lineCount(file: string): number {
  try {
    return readFileSync(file, 'utf8').split('\n').filter(Boolean).length;
  } catch {
    return 0;
  }
}

describe('replay and chain verification on a real decision log', () => {
  let verdict: RunningVerdict;
  let client: CheckClient;
  const dir = tempDir();
  const logFile = join(dir, 'decisions.log');
  const defaultBundle = join(__dirname, '..', '..', 'dist', 'bundles', 'default.tar.gz');
  beforeAll(async () => {
    verdict = await startTestVerdict([
      `decisionLog.file.path=${logFile}`,
      `decisionLog.spool.dir=${join(dir, 'spool')}`,
      'decisionLog.batch.delayMs=5',
    ]);
    client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
    for (let i = 0; i < 4; i++) await client.check(httpCheckRequest({ method: 'GET', path: '/healthz' })); // allow (1 evaluated, 3 cached)
    for (let i = 0; i < 3; i++) await client.check(httpCheckRequest({ method: 'GET', path: `/public/p${i}.html` })); // allow
    for (let i = 0; i < 2; i++) await client.check(httpCheckRequest({ method: 'DELETE', path: `/x${i}` })); // deny
    await waitFor(() => lineCount(logFile) === 9, '9 events in the log file');
  });
  afterAll(async () => {
    client.close();
    await verdict.stop();
  });

  it('reports exactly the decisions the candidate flips (allow → deny), with examples', async () => {
    const path = await candidateBundle();
    const b = await readBundle(await readFile(path), path);
    const engine = await engineFactory(b.engine)(b, { entrypoint: 'envoy/authz/allow', maxMemoryPages: 1024, recycleMemoryPages: 256 });
    const report = await replayDecisionLog(logFile, engine);
    expect(report).toMatchObject({ events: 9, evaluated: 9, skipped: 0, unchanged: 5, errors: 0, partialInputs: 3 });
    expect(report.allowToDeny.count).toBe(4);
    expect(report.denyToAllow.count).toBe(0);
    expect(report.allowToDeny.examples[0]?.now).toBe('no_rule_matched');
  });

  it('verdict replay prints JSON and exits 3 when decisions flip; unchanged bundle exits 0', async () => {
    const path = await candidateBundle();
    const flipped = await run(process.execPath, [cli, 'replay', '--log', logFile, '--bundle', path, '--json']).catch(
      (e: { code: number; stdout: string }) => e,
    );
    expect((flipped as { code: number }).code).toBe(3);
    expect(JSON.parse((flipped as { stdout: string }).stdout)).toMatchObject({ allowToDeny: { count: 4 } });
    const same = await run(process.execPath, [cli, 'replay', '--log', logFile, '--bundle', defaultBundle]);
    expect(same.stdout).toContain('allow → deny: 0');
  });

  it('verdict replay builds its engine from the config it is given: a policy.timeoutMs out of range is ERR_CONFIG, as verdict serve refuses it', async () => {
    const configFile = join(dir, 'replay.yaml');
    writeFileSync(configFile, 'policy:\n  timeoutMs: 0\n');
    const refused = await run(process.execPath, [cli, 'replay', '--log', logFile, '--bundle', defaultBundle, '-c', configFile]).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect((refused as { code: number }).code).toBe(1);
    expect((refused as { stderr: string }).stderr).toMatch(/^verdict: ERR_CONFIG: "policy\.timeoutMs": /);
  });

  it('verdict decisionlog verify passes the log and fails an edited copy with ERR_DECISIONLOG_CHAIN', async () => {
    const ok = await run(process.execPath, [cli, 'decisionlog', 'verify', logFile]);
    expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true, lines: 9 });
    const lines = readFileSync(logFile, 'utf8').split('\n');
    lines[7] = (lines[7] as string).replace('"allowed":false', '"allowed":true');
    const edited = join(dir, 'edited.log');
    writeFileSync(edited, lines.join('\n'));
    const bad = await run(process.execPath, [cli, 'decisionlog', 'verify', edited]).catch((e: { code: number; stderr: string }) => e);
    expect((bad as { code: number }).code).toBe(1);
    expect((bad as { stderr: string }).stderr).toContain('ERR_DECISIONLOG_CHAIN');
  });
});
