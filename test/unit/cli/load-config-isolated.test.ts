import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load-config';
import { packageRoot } from '../../../src/package-root';
import { verdictErrorOf } from '../../helpers/error-code';

// `verdict serve` validates its config in a worker thread (src/cli/load-config-isolated.ts) so that zod and
// the schema never load into the serving heap (docs/memory.md). The built module runs in a child process,
// as the CLI runs it; its answer must be the one `loadConfig` gives for the same file, environment and
// flags, refusals included, and the child's own require cache must hold neither zod nor the YAML parser.

const CHILD = `
const { loadConfigIsolated } = require(${JSON.stringify(join(packageRoot(), 'dist', 'src', 'cli', 'load-config-isolated.js'))});
const loaded = () => Object.keys(require.cache).filter((f) => /node_modules\\/(zod|yaml)\\//.test(f) && !f.includes('@open-policy-agent'));
loadConfigIsolated(JSON.parse(process.env.SOURCES), ...(process.env.BOUNDS ? [JSON.parse(process.env.BOUNDS)] : [])).then(
  (config) => process.stdout.write(JSON.stringify({ config, frozen: Object.isFrozen(config.server.grpc), loaded: loaded() })),
  (err) => process.stdout.write(JSON.stringify({ error: { name: err.name, code: err.code, message: err.message }, loaded: loaded() })),
);
`;

interface ChildAnswer {
  config?: unknown;
  frozen?: boolean;
  error?: { name: string; code: string; message: string };
  loaded: string[];
}

function isolated(
  sources: { file?: string; overrides?: string[] },
  env: Record<string, string> = {},
  bounds?: { heapMb: number; timeoutMs: number },
): ChildAnswer {
  // Only the given variables of those verdict reads, as the in-process side gets.
  const base = Object.entries(process.env).filter(([k]) => !k.startsWith('VERDICT_') && k !== 'SPIFFE_ENDPOINT_SOCKET');
  const out = execFileSync(process.execPath, ['-e', CHILD], {
    env: { ...Object.fromEntries(base), ...env, SOURCES: JSON.stringify(sources), ...(bounds ? { BOUNDS: JSON.stringify(bounds) } : {}) },
    // A child that never answers fails the test instead of holding the test worker.
    timeout: 50_000,
  });
  return JSON.parse(out.toString()) as ChildAnswer;
}

const dir = mkdtempSync(join(tmpdir(), 'verdict-isolated-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the config validated in a worker thread', () => {
  it("gives loadConfig's frozen config for the same file, environment and flags, with no zod or YAML parser in the caller", () => {
    const file = join(packageRoot(), 'config', 'verdict.example.yaml');
    const env = { VERDICT_LOG_LEVEL: 'warn', VERDICT_HTTP_PORT: '9901' };
    const overrides = ['server.grpc.port=3000', 'cache.maxEntries=1234'];
    const answer = isolated({ file, overrides }, env);
    expect(answer.error).toBeUndefined();
    expect(answer.config).toEqual(loadConfig({ file, env, overrides }));
    expect(answer.config).toMatchObject({ server: { grpc: { port: 3000 }, http: { port: 9901 } }, log: { level: 'warn' } });
    expect(answer.frozen).toBe(true);
    expect(answer.loaded).toEqual([]);
  });

  it.each([
    { name: 'unknown key in the file', file: 'sever: {}\n', overrides: [] },
    { name: 'not YAML', file: 'a: [\n', overrides: [] },
    { name: 'flag out of range', file: null, overrides: ['server.grpc.port=70000'] },
    { name: 'flag without a value', file: null, overrides: ['server.grpc.port'] },
  ])('refuses what loadConfig refuses, with its code and message: $name', ({ name, file, overrides }) => {
    const path = file === null ? undefined : join(dir, `${name.replace(/\W/g, '-')}.yaml`);
    if (path !== undefined && file !== null) writeFileSync(path, file);
    const answer = isolated({ ...(path ? { file: path } : {}), overrides });
    const expected = verdictErrorOf(() => loadConfig({ file: path, env: {}, overrides }));
    expect(answer.error).toEqual({ name: 'VerdictError', code: 'ERR_CONFIG', message: expected.message });
    expect(answer.loaded).toEqual([]);
  });

  it('a missing file is refused with ERR_CONFIG', () => {
    const answer = isolated({ file: join(dir, 'absent.yaml') });
    expect(answer.error?.code).toBe('ERR_CONFIG');
    expect(answer.error?.message).toContain('absent.yaml');
  });

  it('a FIFO as the config file is refused with ERR_CONFIG, without waiting for a writer', () => {
    const path = join(dir, 'config.fifo');
    execFileSync('mkfifo', [path]);
    const answer = isolated({ file: path });
    expect(answer.error).toMatchObject({ code: 'ERR_CONFIG', message: expect.stringContaining('is a FIFO, not a regular file') });
  });

  it('/dev/zero as the config file is refused with ERR_CONFIG', () => {
    const answer = isolated({ file: '/dev/zero' });
    expect(answer.error).toMatchObject({ code: 'ERR_CONFIG', message: expect.stringContaining('is a character device') });
  });

  it('a config whose parse needs more heap than the worker may take is refused with ERR_CONFIG', () => {
    // Under the file bound, but a flow sequence of half a million items costs YAML hundreds of MiB.
    const path = join(dir, 'heavy.yaml');
    writeFileSync(path, `decisionLog:\n  mask: [${'a,'.repeat(500_000)}a]\n`);
    const answer = isolated({ file: path }, {}, { heapMb: 64, timeoutMs: 50_000 });
    expect(answer.error).toEqual({
      name: 'VerdictError',
      code: 'ERR_CONFIG',
      message: 'config validation needed more than 64 MiB of heap',
    });
  });

  it('a validation that has not answered by its deadline is refused with ERR_CONFIG', () => {
    // 1 ms: the worker cannot even have loaded the schema by then.
    const answer = isolated({ file: join(packageRoot(), 'config', 'verdict.example.yaml') }, {}, { heapMb: 512, timeoutMs: 1 });
    expect(answer.error).toEqual({ name: 'VerdictError', code: 'ERR_CONFIG', message: 'config validation did not finish within 1 ms' });
  });
});
