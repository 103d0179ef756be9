import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { packageRoot } from '../../src/package-root';

export interface LogLine {
  msg?: string;
  code?: string;
  level?: string;
  worker?: number;
  [key: string]: unknown;
}

/**
 * `verdict serve` as a child process (built dist/), so a test can prove what happens to the *process*:
 * same PID before and after, no exit. Every JSON log line on stderr is kept and emitted, so a test waits
 * on the line that says what happened (a refusal, a fallback) instead of sleeping.
 */
export class VerdictChild extends EventEmitter<{ line: [LogLine] }> {
  readonly lines: LogLine[] = [];
  grpcPort = 0;
  httpPort: number | null = null;
  exitCode: number | null = null;
  private constructor(readonly child: ChildProcess) {
    super();
  }

  get pid(): number {
    return this.child.pid as number;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts the process and waits for its "verdict serving" line (the primary's, in cluster mode). */
  static async start(sets: string[], opts: { onLine?: (l: LogLine) => void; stdout?: 'pipe' } = {}): Promise<VerdictChild> {
    const args = [join(packageRoot(), 'bin', 'verdict.js'), 'serve', '--set', 'server.grpc.port=0', '--set', 'server.http.port=0'];
    // One process unless the test asks for a cluster: the PID a test checks is then the server's.
    for (const s of ['log.level=info', 'server.workers=1', ...sets]) args.push('--set', s);
    const v = new VerdictChild(spawn(process.execPath, args, { stdio: ['ignore', opts.stdout ?? 'ignore', 'pipe'] }));
    if (opts.onLine) v.on('line', opts.onLine);
    createInterface({ input: v.child.stderr! }).on('line', (raw) => {
      let line: LogLine;
      try {
        line = JSON.parse(raw) as LogLine;
      } catch {
        line = { msg: raw };
      }
      v.lines.push(line);
      v.emit('line', line);
    });
    const exited = once(v.child, 'exit').then(([code]) => {
      throw new Error(`verdict exited (${String(code)}) before serving:\n${v.lines.map((l) => JSON.stringify(l)).join('\n')}`);
    });
    const serving = v.waitForLog((l) => l.msg === 'verdict serving' && l.worker === undefined);
    const line = await Promise.race([serving, exited]);
    v.grpcPort = line.grpcPort as number;
    v.httpPort = (line.httpPort as number | null) ?? null;
    return v;
  }

  /** The next (or an already seen, when `seen`) log line matching `match`. */
  waitForLog(match: (l: LogLine) => boolean, opts: { seen?: boolean } = {}): Promise<LogLine> {
    if (opts.seen) {
      const found = this.lines.find(match);
      if (found) return Promise.resolve(found);
    }
    return new Promise((resolve) => {
      const on = (l: LogLine): void => {
        if (!match(l)) return;
        this.off('line', on);
        resolve(l);
      };
      this.on('line', on);
    });
  }

  async metrics(): Promise<string> {
    return (await fetch(`http://127.0.0.1:${this.httpPort}/metrics`)).text();
  }

  async readyStatus(): Promise<number> {
    return (await fetch(`http://127.0.0.1:${this.httpPort}/readyz`)).status;
  }

  async stop(): Promise<void> {
    if (!this.alive) return;
    const exited = once(this.child, 'exit');
    this.child.kill('SIGTERM');
    await exited;
  }
}
