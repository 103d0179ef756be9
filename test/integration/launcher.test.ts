import { spawn } from 'node:child_process';
import { readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/package-root';

// bin/verdict, the default start (npm start, the package's bin): its memory and GC defaults (docs/memory.md) reach
// the server process, the shell is replaced by node (no second process holding memory), nothing warns on
// start, and a value of the user's own comes after the defaults, so it wins (later entries win in both
// GLIBC_TUNABLES and NODE_OPTIONS). Waits are on log lines and exits, never on time.
// glibc, parsing GLIBC_TUNABLES at start, ends each tunable's value with a NUL in place, so /proc/<pid>/environ
// shows the entry as its tunables separated by NULs: seeing all of them so proves glibc read each one.

const DEFAULT_TUNABLES = ['glibc.malloc.arena_max=2', 'glibc.malloc.trim_threshold=131072', 'glibc.malloc.mmap_threshold=131072'];
const parsedTunables = (...tunables: string[]): string => `\0GLIBC_TUNABLES=${tunables.join('\0')}\0`;
const DEFAULT_NODE_OPTIONS = '--max-semi-space-size=2';

interface Served {
  pid: number;
  /** /proc/<pid>/environ as read, NULs included. */
  rawEnviron: string;
  environ: Map<string, string>;
  exe: string;
  /** /proc/<pid>/cmdline: the node arguments the launcher exec'd with. */
  cmdline: string[];
  /** Every stderr line up to and including "verdict serving". */
  startLines: string[];
  exitCode: number | null;
}

/** Starts `bin/verdict serve` on free ports with `env` (and this node first on PATH), reads it, stops it. */
function serveOnce(env: NodeJS.ProcessEnv): Promise<Served> {
  const args = ['serve', '--set', 'server.workers=1', '--set', 'server.grpc.port=0', '--set', 'server.http.port=0'];
  const child = spawn(join(packageRoot(), 'bin', 'verdict'), args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...env, PATH: `${dirname(process.execPath)}${delimiter}${env.PATH ?? ''}` },
  });
  const lines: string[] = [];
  return new Promise((resolve, reject) => {
    let served: Omit<Served, 'exitCode'> | null = null;
    child.once('exit', (code) =>
      served ? resolve({ ...served, exitCode: code }) : reject(new Error(`exited ${code}:\n${lines.join('\n')}`)),
    );
    createInterface({ input: child.stderr! }).on('line', (line) => {
      if (served) return;
      lines.push(line);
      if (!line.includes('"msg":"verdict serving"')) return;
      const rawEnviron = `\0${readFileSync(`/proc/${child.pid}/environ`, 'utf8')}`;
      const environ = new Map(
        rawEnviron
          .split('\0')
          .filter((e) => e.includes('='))
          .map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)] as [string, string]),
      );
      const cmdline = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
      served = {
        pid: child.pid!,
        rawEnviron,
        environ,
        exe: realpathSync(readlinkSync(`/proc/${child.pid}/exe`)),
        cmdline,
        startLines: lines,
      };
      child.kill('SIGTERM');
    });
  });
}

describe('bin/verdict launcher', () => {
  it('serves as node itself with the malloc and semi-space defaults in its environment, --single-threaded-gc and one V8 platform thread, no warning, exit 0 on SIGTERM', async () => {
    const { GLIBC_TUNABLES: _t, NODE_OPTIONS: _n, ...env } = process.env;
    const s = await serveOnce(env);
    expect(s.exe).toBe(realpathSync(process.execPath));
    expect(s.rawEnviron).toContain(parsedTunables(...DEFAULT_TUNABLES));
    expect(s.environ.get('NODE_OPTIONS')).toBe(DEFAULT_NODE_OPTIONS);
    // node itself, with V8's GC on the main thread only (an argument: node refuses it in NODE_OPTIONS) and
    // one V8 platform thread.
    expect(s.cmdline.slice(1, 4)).toEqual([
      '--single-threaded-gc',
      '--v8-pool-size=1',
      join(realpathSync(packageRoot()), 'bin', 'verdict.js'),
    ]);
    for (const line of s.startLines) expect((JSON.parse(line) as { level: string }).level, line).toBe('info');
    expect(s.exitCode).toBe(0);
  });

  it("puts the user's own GLIBC_TUNABLES and NODE_OPTIONS after the defaults, so they win", async () => {
    const s = await serveOnce({ ...process.env, GLIBC_TUNABLES: 'glibc.malloc.arena_max=4', NODE_OPTIONS: '--max-semi-space-size=8' });
    expect(s.rawEnviron).toContain(parsedTunables(...DEFAULT_TUNABLES, 'glibc.malloc.arena_max=4'));
    expect(s.environ.get('NODE_OPTIONS')).toBe(`${DEFAULT_NODE_OPTIONS} --max-semi-space-size=8`);
  });

  it('VERDICT_GC=parallel starts node without --single-threaded-gc or --v8-pool-size (V8 keeps its GC and platform threads)', async () => {
    const s = await serveOnce({ ...process.env, VERDICT_GC: 'parallel' });
    expect(s.cmdline.slice(1, 2)).toEqual([join(realpathSync(packageRoot()), 'bin', 'verdict.js')]);
    expect(s.cmdline).not.toContain('--single-threaded-gc');
    expect(s.cmdline).not.toContain('--v8-pool-size=1');
    expect(s.exitCode).toBe(0);
  });

  it('refuses a VERDICT_GC it does not know, with exit 2 and a message naming the values', async () => {
    const child = spawn(join(packageRoot(), 'bin', 'verdict'), ['serve'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, VERDICT_GC: 'threads', PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}` },
    });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(2);
    expect(stderr).toContain("VERDICT_GC must be single or parallel, not 'threads'");
  });
});
