import { closeSync, constants, readSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../clock';
import type { KernelTelemetryConfig } from '../config/sections/kernel-telemetry';
import type { ErrorCode, VerdictError } from '../errors';
import type { DelegatedStreamHandlers, DelegatedX509SVID } from '../identity/delegated-identity-client';
import type { Logger } from '../telemetry/logger';
import { openRegularSync } from '../regular-file';
import { LogThrottle } from '../telemetry/log-throttle';

type Settings = KernelTelemetryConfig['delegatedIdentity'];

/** What a cgroup is bound to: one SPIFFE ID, nothing (yet), or several (its processes disagree). */
export type DelegatedBinding = { kind: 'bound'; spiffeId: string } | { kind: 'none' } | { kind: 'ambiguous'; spiffeIds: string[] };

export interface DelegatedStatus {
  streams: number;
  cgroups: { cgroupPath: string; binding: DelegatedBinding; pids: number[] }[];
}

export interface DelegatedBindingsDeps {
  client: { subscribeX509SVIDs(pid: number, handlers: DelegatedStreamHandlers): { cancel(): void } };
  clock: Clock;
  logger: Logger;
  /** A cgroup's binding changed (called before any later read attributes traffic to it). */
  publish(cgroupPath: string, binding: DelegatedBinding): void;
  /** A stream ended with this code (refused, failed, malformed): the metric. */
  streamError(code: ErrorCode): void;
  /** An update arrived: applied, or discarded because its PID is no longer the process it was asked for. */
  updateSeen(outcome: 'applied' | 'discarded'): void;
}

/** One followed process of a cgroup and its stream. */
interface Followed {
  pid: number;
  /** /proc/<pid>/stat starttime: with the PID it names one process (a reused PID has another). */
  startTime: string;
  stream: { cancel(): void } | null;
  /** The last update's SVIDs; null before the first and after a refusal. */
  svids: DelegatedX509SVID[] | null;
  /** Wall-clock ms since the stream went down (its SVIDs go stale stalenessMs later); null while up. */
  downSinceMs: number | null;
  backoffMs: number;
  retry: NodeJS.Timeout | null;
}

interface Group {
  cgroupPath: string;
  followed: Map<number, Followed>;
  /** The binding last published, as a comparable string. */
  published: string;
}

// cgroup.procs is read up to this much per check (~9,000 PIDs): a huge cgroup costs no more than that.
const PROCS_READ_BYTES = 64 * 1024;
// About 3 ms of /proc reads per event-loop turn (see check()).
const GROUPS_PER_TURN = 64;
// At most one log line per code per this long, with the count since the last (the metrics count each one).
const LOG_INTERVAL_MS = 60_000;

/**
 * Binds workload cgroups to SPIFFE IDs through the SPIRE agent's Delegated Identity API: per cgroup, up to
 * `pidsPerCgroup` of the processes in its `cgroup.procs` each get a `SubscribeToX509SVIDs` stream by PID. The
 * cgroup is bound to the ID the streams agree on; processes with different IDs (or one with several) make it
 * ambiguous (attributed to unknown, as an ambiguous source address is). Every `pidCheckIntervalMs` each
 * followed process is checked: gone from the cgroup, exited, or its PID now another process (start time) →
 * its stream is cancelled (SPIRE's contract for PID subscriptions) and a free slot is filled from the cgroup
 * again (an emptied or re-created cgroup is re-read the same way). A failed stream is retried with capped,
 * jittered exponential backoff while its process lives; its IDs keep binding for `stalenessMs`, except after a
 * refusal (the agent says verdict may not know: forgotten at once). SVIDs past their expiry never bind.
 */
export class DelegatedBindings {
  private readonly groups: Group[];
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private checking = false;

  private readonly errorLog: LogThrottle<ErrorCode>;

  constructor(
    private readonly settings: Settings,
    cgroupPaths: readonly string[],
    private readonly deps: DelegatedBindingsDeps,
  ) {
    this.errorLog = new LogThrottle<ErrorCode>(deps.clock, LOG_INTERVAL_MS);
    this.groups = cgroupPaths.map((cgroupPath) => ({ cgroupPath, followed: new Map(), published: 'none' }));
  }

  start(): void {
    this.check();
    this.timer = setInterval(() => this.check(), this.settings.pidCheckIntervalMs);
    this.timer.unref();
  }

  /**
   * One pass over every cgroup: drop processes that went away, follow new ones, re-judge staleness and expiry.
   * A cgroup costs ~50 µs of synchronous /proc reads, so the pass yields to the event loop every
   * GROUPS_PER_TURN cgroups (the table may hold 1,024: ~50 ms in one turn otherwise); a pass still under way
   * when the next is due is not started twice.
   */
  check(): void {
    if (this.closed || this.checking) return;
    this.checking = true;
    this.checkFrom(0);
  }

  private checkFrom(from: number): void {
    if (this.closed) return;
    const end = Math.min(this.groups.length, from + GROUPS_PER_TURN);
    for (let i = from; i < end; i++) this.checkGroup(this.groups[i] as Group);
    if (end < this.groups.length) setImmediate(() => this.checkFrom(end));
    else this.checking = false;
  }

  private checkGroup(g: Group): void {
    const procs = readProcs(g.cgroupPath);
    for (const f of g.followed.values()) if (!procs.includes(f.pid) || startTimeOf(f.pid) !== f.startTime) this.drop(g, f);
    for (const pid of procs) {
      if (g.followed.size >= this.settings.pidsPerCgroup) break;
      if (!g.followed.has(pid)) this.follow(g, pid);
    }
    this.judge(g);
  }

  /** Each cgroup's binding and followed PIDs, and how many streams are open (bounded by the table). */
  status(): DelegatedStatus {
    let streams = 0;
    const cgroups = this.groups.map((g) => {
      for (const f of g.followed.values()) if (f.stream) streams++;
      return { cgroupPath: g.cgroupPath, binding: this.bindingOf(g), pids: [...g.followed.keys()] };
    });
    return { streams, cgroups };
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    for (const g of this.groups) for (const f of g.followed.values()) this.drop(g, f);
  }

  private follow(g: Group, pid: number): void {
    const startTime = startTimeOf(pid);
    if (startTime === null) return; // exited since the read
    const f: Followed = {
      pid,
      startTime,
      stream: null,
      svids: null,
      downSinceMs: null,
      backoffMs: this.settings.reconnectInitialMs,
      retry: null,
    };
    g.followed.set(pid, f);
    this.open(g, f);
  }

  private open(g: Group, f: Followed): void {
    f.retry = null;
    f.stream = this.deps.client.subscribeX509SVIDs(f.pid, {
      update: (svids) => this.onUpdate(g, f, svids),
      down: (err) => this.onDown(g, f, err),
    });
  }

  private drop(g: Group, f: Followed): void {
    f.stream?.cancel();
    f.stream = null;
    if (f.retry) clearTimeout(f.retry);
    g.followed.delete(f.pid);
  }

  private onUpdate(g: Group, f: Followed, svids: DelegatedX509SVID[]): void {
    // The agent attested the PID before answering: if that PID is still the same process in this cgroup, the
    // answer was about it; otherwise it may be about whatever process had the PID then, and is discarded.
    if (!readProcs(g.cgroupPath).includes(f.pid) || startTimeOf(f.pid) !== f.startTime) {
      this.deps.updateSeen('discarded');
      this.drop(g, f);
      this.judge(g);
      return;
    }
    this.deps.updateSeen('applied');
    f.svids = svids;
    f.downSinceMs = null;
    f.backoffMs = this.settings.reconnectInitialMs;
    this.judge(g);
  }

  private onDown(g: Group, f: Followed, err: VerdictError): void {
    f.stream = null;
    if (this.closed) return;
    this.deps.streamError(err.code);
    const refused = err.code === 'ERR_DELEGATED_IDENTITY_REFUSED';
    this.log(
      refused ? 'error' : 'warn',
      err.code,
      { detail: err.message, cgroup: g.cgroupPath, pid: f.pid },
      refused
        ? 'kernel telemetry: the SPIRE agent refused the Delegated Identity API (is verdict in its authorized_delegates?); delegated cgroups are unknown, the configured table still applies'
        : 'kernel telemetry: Delegated Identity stream down; retrying',
    );
    if (refused) {
      // The agent's configuration, not a passing fault: verdict forgets what it was told and asks again rarely.
      f.svids = null;
      f.backoffMs = this.settings.reconnectMaxMs;
    } else f.downSinceMs ??= this.deps.clock.nowMs();
    // Full jitter over the upper half of the current backoff, then double it up to the cap.
    const delayMs = Math.round(f.backoffMs / 2 + (Math.random() * f.backoffMs) / 2);
    f.backoffMs = Math.min(f.backoffMs * 2, this.settings.reconnectMaxMs);
    f.retry = setTimeout(() => {
      if (g.followed.get(f.pid) === f) this.open(g, f);
    }, delayMs);
    f.retry.unref();
    this.judge(g);
  }

  private bindingOf(g: Group): DelegatedBinding {
    const nowMs = this.deps.clock.nowMs();
    const ids = new Set<string>();
    for (const f of g.followed.values()) {
      if (f.svids === null || (f.downSinceMs !== null && nowMs - f.downSinceMs > this.settings.stalenessMs)) continue;
      for (const s of f.svids) if (s.expiresAtMs > nowMs) ids.add(s.spiffeId);
    }
    if (ids.size === 0) return { kind: 'none' };
    const [first] = ids;
    return ids.size === 1 ? { kind: 'bound', spiffeId: first as string } : { kind: 'ambiguous', spiffeIds: [...ids].sort() };
  }

  /** Publishes the cgroup's binding when it changed. */
  private judge(g: Group): void {
    const b = this.bindingOf(g);
    const key = b.kind === 'bound' ? `bound ${b.spiffeId}` : b.kind;
    if (key === g.published) return;
    g.published = key;
    if (b.kind === 'ambiguous')
      this.log(
        'warn',
        'ERR_KERNEL_IDENTITY_AMBIGUOUS',
        { cgroup: g.cgroupPath, spiffeIds: b.spiffeIds.slice(0, 4) },
        'kernel telemetry: processes of one cgroup hold different SPIFFE IDs; its traffic is attributed to unknown',
      );
    this.deps.publish(g.cgroupPath, b);
  }

  /** At most one line per code per LOG_INTERVAL_MS, with how many were not logged since the last one. */
  private log(level: 'warn' | 'error', code: ErrorCode, fields: object, msg: string): void {
    const held = this.errorLog.admit(code);
    if (held !== null) this.deps.logger[level]({ code, ...fields, notLoggedSinceLast: held }, msg);
  }
}

// One buffer per kind of read, reused: every read is synchronous, so none overlaps another.
const procsBuf = Buffer.allocUnsafe(PROCS_READ_BYTES);
// /proc/<pid>/stat is ~300 bytes (comm is at most 16): the start time is well inside this.
const statBuf = Buffer.allocUnsafe(1024);

/**
 * Up to `buf.length` bytes of a file (a short read of a kernfs/procfs file is its end), as Latin-1; null if it
 * cannot be read or is not a regular file. The open does not block and follows no last-component symlink: a
 * configured cgroupPath that is an ordinary directory could hold a FIFO named cgroup.procs, and a blocking
 * open or read of it would stop the event loop.
 */
function readHead(path: string, buf: Buffer): string | null {
  let fd: number;
  try {
    fd = openRegularSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch {
    return null;
  }
  try {
    let n = 0;
    for (let got = -1; got !== 0 && n < buf.length; n += got) got = readSync(fd, buf, n, buf.length - n, null);
    return buf.toString('latin1', 0, n);
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

/** The first PROCS_READ_BYTES of a cgroup's `cgroup.procs`, as PIDs; none when the cgroup does not exist. */
function readProcs(cgroupPath: string): number[] {
  const text = readHead(join(cgroupPath, 'cgroup.procs'), procsBuf);
  if (text === null) return [];
  // A read cut short by the bound ends inside a line: only whole lines count.
  const whole = text.length === procsBuf.length ? text.slice(0, text.lastIndexOf('\n') + 1) : text;
  return whole.split('\n').filter(Boolean).map(Number);
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot); null when the process is gone. */
function startTimeOf(pid: number): string | null {
  const stat = readHead(`/proc/${pid}/stat`, statBuf);
  // Field 2 (comm) is in parentheses and may hold spaces or ')': count fields after the last ')'.
  return stat === null ? null : (stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null);
}
