import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

/** CPU time (user + system, all threads) a process has used so far, in µs, from /proc/<pid>/stat. */
export function processCpuMicros(pid: number): number {
  return statCpuMicros(`/proc/${pid}/stat`);
}

/** The same for one thread of it (a process's main thread has the process's id as its own). */
export function threadCpuMicros(pid: number, tid: number): number {
  return statCpuMicros(`/proc/${pid}/task/${tid}/stat`);
}

function statCpuMicros(path: string): number {
  ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  // Fields after the ")" that closes comm: state is field 3, utime 14, stime 15 (proc(5)).
  const stat = readFileSync(path, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) / ticksPerSecond) * 1e6;
}

/** Pins a running process and all its threads to one CPU. */
export function pinToCpu(pid: number, cpu: number): void {
  execFileSync('taskset', ['-a', '-pc', String(cpu), String(pid)], { stdio: 'ignore' });
}
