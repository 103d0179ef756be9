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

/** One thread's CPU time so far (µs) and its nice value; null when the thread has ended. */
export function threadCpuAndNice(pid: number, tid: number): { cpuMicros: number; nice: number } | null {
  let fields: string[];
  try {
    fields = statFields(`/proc/${pid}/task/${tid}/stat`);
  } catch {
    return null; // the thread ended between listing and reading
  }
  return { cpuMicros: cpuMicrosOf(fields), nice: Number(fields[16]) };
}

function statCpuMicros(path: string): number {
  return cpuMicrosOf(statFields(path));
}

/** The fields after the ")" that closes comm: state is field 3 of proc(5), utime 14, stime 15, nice 19. */
function statFields(path: string): string[] {
  const stat = readFileSync(path, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

function cpuMicrosOf(fields: string[]): number {
  ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  return ((Number(fields[11]) + Number(fields[12])) / ticksPerSecond) * 1e6;
}

/** Pins a running process and all its threads to one CPU. */
export function pinToCpu(pid: number, cpu: number): void {
  execFileSync('taskset', ['-a', '-pc', String(cpu), String(pid)], { stdio: 'ignore' });
}
