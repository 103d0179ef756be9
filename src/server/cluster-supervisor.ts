import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { AggregatorRegistry } from 'prom-client';
import type { Config } from '../config/schema';
import type { Logger } from '../telemetry/logger';
import { OpsHttpServer } from './http-server';

/**
 * Message a worker sends when its gRPC listener is bound, and again whenever its bundle state changes:
 * `serving` says whether it has an active bundle (a worker without one answers NOT_SERVING and keeps
 * following its bundle source).
 */
export interface WorkerReady {
  type: 'verdict:ready';
  grpcPort: number;
  serving?: boolean;
}

/** Message a worker sends when it cannot start: its error code, so the primary logs one line that names it. */
export interface WorkerFailure {
  type: 'verdict:failed';
  code: string;
  detail: string;
}

/** The cluster could not start; the primary has already logged why (one line). */
export class WorkerFailed extends Error {
  override readonly name = 'WorkerFailed';
}

function isWorkerFailure(m: unknown): m is WorkerFailure {
  return typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'verdict:failed';
}

export function workerCount(config: Config): number {
  return config.server.workers === 'auto' ? availableParallelism() : config.server.workers;
}

export function isWorkerReady(m: unknown): m is WorkerReady {
  return typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'verdict:ready';
}

const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 5000;
/** Consecutive start-up deaths, with no worker ever ready, after which the cluster gives up (e.g. port in use). */
const MAX_STARTUP_FAILURES = 5;

/**
 * The primary of cluster mode: forks N workers that share the gRPC listener (the primary accepts and hands
 * connections round-robin), serves /healthz /readyz /metrics itself with the workers' metrics aggregated,
 * restarts a worker that dies (with backoff), and stops all on SIGTERM. A worker's death is never a reason
 * to stop the cluster — a bundle cannot kill a worker (it is refused with a code, and a worker with no good
 * bundle starts NOT_SERVING), and whatever did is retried. Only when no worker has ever become ready and
 * start-ups keep failing (MAX_STARTUP_FAILURES in a row: the port is taken, the build is broken) does the
 * primary stop.
 */
export class ClusterSupervisor {
  private readonly ready = new Set<number>();
  /** Worker id → why it could not start (its verdict:failed message). */
  private readonly failures = new Map<number, WorkerFailure>();
  /** Workers with an active bundle. */
  private readonly serving = new Set<number>();
  private everReady = false;
  private startupFailures = 0;
  /** Worker id → its slot (0..N-1). A replacement takes the dead worker's slot, and so its files. */
  private readonly slots = new Map<number, number>();
  private readonly aggregator = new AggregatorRegistry();
  private opsDropped = 0;
  private ops: OpsHttpServer | null = null;
  private stopping = false;
  private restartDelayMs = RESTART_MIN_MS;
  private grpcPort = 0;

  constructor(
    private readonly config: Config,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<{ grpcPort: number; httpPort: number | null; workers: number }> {
    const n = workerCount(this.config);
    const allReady = new Promise<void>((resolve, reject) => {
      cluster.on('message', (worker, msg) => {
        if (isWorkerFailure(msg)) this.failures.set(worker.id, msg);
        if (!isWorkerReady(msg)) return;
        this.ready.add(worker.id);
        this.everReady = true;
        this.startupFailures = 0;
        if (msg.serving === false) this.serving.delete(worker.id);
        else this.serving.add(worker.id);
        this.grpcPort = msg.grpcPort;
        this.restartDelayMs = RESTART_MIN_MS;
        if (this.ready.size === n) resolve();
      });
      cluster.on('exit', (worker, code, signal) => this.onExit(worker, code, signal, reject));
    });
    for (let i = 0; i < n; i++) this.fork(i);
    await allReady;
    let httpPort: number | null = null;
    if (this.config.server.http.port !== null) {
      this.ops = new OpsHttpServer({
        host: this.config.server.http.host,
        port: this.config.server.http.port,
        metricsText: () => this.aggregator.clusterMetrics(),
        metricsContentType: this.aggregator.contentType,
        isReady: () => !this.stopping && this.serving.size > 0,
        // The primary has no registry of its own (its /metrics is the workers'): it says so in its log,
        // at the first drop and every 1,000th after it, so that a flood cannot flood the log too.
        onConnectionDropped: () => {
          if (this.opsDropped++ % 1000 === 0)
            this.logger.warn({ dropped: this.opsDropped }, 'ops listener full: connections closed as accepted');
        },
        onConnectionStalled: () =>
          this.logger.debug({ code: 'ERR_CONNECTION_STALLED' }, 'ops connection closed: its answers were not read'),
      });
      httpPort = await this.ops.start();
    }
    this.logger.info({ grpcPort: this.grpcPort, httpPort, workers: n }, 'verdict serving');
    return { grpcPort: this.grpcPort, httpPort, workers: n };
  }

  /** SIGTERM each worker (each drains its calls), wait for all to exit, then close the ops listener. */
  async stop(): Promise<void> {
    this.stopping = true;
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.isDead()) return resolve();
            w.once('exit', () => resolve());
            w.process.kill('SIGTERM');
          }),
      ),
    );
    await this.ops?.stop();
  }

  private onExit(worker: Worker, code: number | null, signal: string | null, reject: (e: Error) => void): void {
    const wasReady = this.ready.delete(worker.id);
    this.serving.delete(worker.id);
    const slot = this.slots.get(worker.id) ?? 0;
    this.slots.delete(worker.id);
    if (this.stopping) return;
    const why = this.failures.get(worker.id);
    this.failures.delete(worker.id);
    // A worker that said why it cannot start (ERR_LISTEN, a bad config) fails the same way every time: one
    // line for the cluster and stop. A silent death is retried until start-ups keep failing.
    const hopeless = !wasReady && (why !== undefined || (!this.everReady && ++this.startupFailures >= MAX_STARTUP_FAILURES));
    if (hopeless) {
      this.stopping = true;
      const fields = why
        ? { code: why.code, detail: why.detail }
        : { code: 'ERR_INTERNAL', exit: signal ?? code, failures: this.startupFailures };
      this.logger.fatal({ worker: worker.id, ...fields }, 'verdict cannot start: a worker failed before it was ready');
      reject(new WorkerFailed(`worker exited with ${signal ?? code} before it was ready`));
      void this.stop().then(() => process.exit(1));
      return;
    }
    const delay = this.restartDelayMs;
    this.restartDelayMs = Math.min(this.restartDelayMs * 2, RESTART_MAX_MS);
    this.logger.error({ worker: worker.id, code, signal, wasReady, restartInMs: delay }, 'worker died; restarting');
    setTimeout(() => {
      if (!this.stopping) this.fork(slot);
    }, delay).unref();
  }

  private fork(slot: number): void {
    const worker = cluster.fork({ VERDICT_WORKER_SLOT: String(slot) });
    this.slots.set(worker.id, slot);
    this.logger.info({ worker: worker.id, pid: worker.process.pid, slot }, 'worker forked');
  }
}
