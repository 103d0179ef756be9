import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningVerdict } from '../../src/main';
import { readBundle } from '../../src/policy/bundle-reader';
import { OPAEngine } from '../../src/policy/engine-opa';
import { engineOptionsOf } from '../../src/policy/policy-engine';
import { loadConfig } from '../../src/config/load-config';
import { packageRoot } from '../../src/package-root';
import { verdictErrorOf } from '../helpers/error-code';
import { httpInput } from '../helpers/input-document';
import {
  buildTestBundle,
  checkClient,
  headerValue,
  httpCheckRequest,
  startTestVerdict,
  tempDir,
  type CheckClient,
} from '../helpers/verdict-harness';

// An OPA evaluation runs on the event loop. Before native/eval-deadline.cc, one that did not end (here: three
// nested loops over 3,000 numbers, 2.7e10 steps of compiled Rego that allocate nothing, so no memory bound
// stops them either) held the loop for as long as it ran: every other Check, health probe and bundle load
// waited, and policy.timeoutMs was only applied once it returned. The bundle is built at run time by the
// real `opa build -t wasm`.

const POLICY = `package envoy.authz
import rego.v1

path := input.attributes.request.http.path
default allow := false

allow if path == "/ok"
allow if {
	path == "/spin"
	some i in data.nums
	some j in data.nums
	some k in data.nums
	i > j
	j > k
	k > 100000
}
`;
const run = promisify(execFile);
const DATA = JSON.stringify({ nums: Array.from({ length: 3000 }, (_, i) => i) });

let bundlePath: string;

beforeAll(async () => {
  bundlePath = await buildTestBundle({ 'authz.rego': POLICY, 'data.json': DATA });
}, 120_000);

describe('OPA engine with policy.timeoutMs enforced while it runs', () => {
  it('stops an evaluation that never ends at its budget (ERR_POLICY_TIMEOUT), replaces the instance and answers the next one', async () => {
    const options = engineOptionsOf(loadConfig({ overrides: ['policy.timeoutMs=80'] }));
    expect(options.evalDeadline?.ms).toBe(80);
    const recycles: string[] = [];
    const engine = (await OPAEngine.create(await readBundle(await readFile(bundlePath), bundlePath), {
      ...options,
      onRecycle: (why) => recycles.push(why),
    })) as OPAEngine;
    const started = process.hrtime.bigint();
    const err = verdictErrorOf(() => engine.evaluate(httpInput('/spin')));
    expect(Number(process.hrtime.bigint() - started) / 1e6).toBeGreaterThanOrEqual(80);
    expect(err.code).toBe('ERR_POLICY_TIMEOUT');
    expect(err.message).toBe('evaluation stopped at its 80 ms budget');
    expect(recycles).toEqual(['timeout']);
    // The fresh instance has the data (the image) and the policy: both rules answer as before.
    expect(engine.evaluate(httpInput('/ok')).allowed).toBe(true);
    expect(engine.evaluate(httpInput('/other')).allowed).toBe(false);
    expect(recycles).toEqual(['timeout']);
  }, 60_000);
});

describe('a Check whose evaluation never ends, over gRPC', () => {
  let verdict: RunningVerdict;
  let client: CheckClient;

  beforeAll(async () => {
    verdict = await startTestVerdict([`policy.bundle=${bundlePath}`, 'cache.enabled=false', 'policy.timeoutMs=300']);
    client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
  }, 120_000);

  afterAll(async () => {
    client?.close();
    await verdict?.stop();
  });

  it('is denied ERR_POLICY_TIMEOUT, a Check sent behind it is answered, and the recycle is counted', async () => {
    const spin = client.check(httpCheckRequest({ path: '/spin' }));
    const behind = client.check(httpCheckRequest({ path: '/ok' }));
    const [spun, ok] = await Promise.all([spin, behind]);
    expect(spun.status?.code).toBe(7);
    expect(headerValue(spun.deniedResponse?.headers, 'x-verdict-reason')).toBe('ERR_POLICY_TIMEOUT');
    expect(ok.status?.code).toBe(0);
    const metrics = await (await fetch(`http://127.0.0.1:${verdict.httpPort}/metrics`)).text();
    expect(metrics).toMatch(/^verdict_engine_recycles_total\{engine="opa",why="timeout"\} 1$/m);
    expect((await client.check(httpCheckRequest({ path: '/ok' }))).status?.code).toBe(0);
  }, 60_000);
});

describe('verdict eval of an evaluation that never ends', () => {
  it('is stopped at the default policy.timeoutMs: ERR_POLICY_TIMEOUT, exit 1', async () => {
    const dir = tempDir('verdict-eval-spin-');
    const input = join(dir, 'input.json');
    writeFileSync(input, JSON.stringify(httpInput('/spin')));
    const cli = join(packageRoot(), 'dist', 'src', 'cli', 'main.js');
    const ran = await run(process.execPath, [cli, 'eval', '-b', bundlePath, '-i', input], { timeout: 30_000 }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code?: number; stderr?: string }) => ({ code: err.code, stderr: err.stderr ?? '' }),
    );
    expect(ran.code).toBe(1);
    expect(ran.stderr).toMatch(/^verdict: ERR_POLICY_TIMEOUT: evaluation stopped at its 100 ms budget\n$/);
  }, 60_000);

  it('is stopped at the policy.timeoutMs of the config it is given (-c), and of --set over it', async () => {
    const dir = tempDir('verdict-eval-spin-config-');
    const input = join(dir, 'input.json');
    writeFileSync(input, JSON.stringify(httpInput('/spin')));
    const config = join(dir, 'verdict.yaml');
    writeFileSync(config, 'policy:\n  timeoutMs: 250\n');
    const cli = join(packageRoot(), 'dist', 'src', 'cli', 'main.js');
    const evaluate = (...more: string[]) =>
      run(process.execPath, [cli, 'eval', '-b', bundlePath, '-i', input, '-c', config, ...more], { timeout: 30_000 }).then(
        () => ({ code: 0, stderr: '' }),
        (err: { code?: number; stderr?: string }) => ({ code: err.code, stderr: err.stderr ?? '' }),
      );
    expect(await evaluate()).toEqual({ code: 1, stderr: 'verdict: ERR_POLICY_TIMEOUT: evaluation stopped at its 250 ms budget\n' });
    expect(await evaluate('--set', 'policy.timeoutMs=150')).toEqual({
      code: 1,
      stderr: 'verdict: ERR_POLICY_TIMEOUT: evaluation stopped at its 150 ms budget\n',
    });
  }, 60_000);
});
