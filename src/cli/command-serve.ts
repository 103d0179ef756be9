import cluster from 'node:cluster';
import { join } from 'node:path';
import type { Command } from 'commander';
import { AggregatorRegistry } from 'prom-client';
import type { Config } from '../config/schema';
import { startVerdict } from '../main';
import { ClusterSupervisor, WorkerFailed, workerCount, type WorkerFailure, type WorkerReady } from '../server/cluster-supervisor';
import { VerdictError } from '../errors';
import { routeGrpcLog } from '../telemetry/grpc-log';
import { createLogger, type Logger } from '../telemetry/logger';
import { drainThenStop } from '../server/drain-sequence';
import { applyHeapGrowing } from './heap-growing';
import { startGcMarking } from './gc-marking';
import { startMallocTrim } from './malloc-trim';
import { boundedError, boundedText } from './fatal-text';
import { collect } from './config-options';
import { loadConfigIsolated } from './load-config-isolated';
import { Metrics } from '../telemetry/metrics';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('Serve envoy.service.auth.v3.Authorization/Check')
    .option('-c, --config <file>', 'YAML config file')
    .option('--set <key=value>', 'override a config key, e.g. --set server.grpc.port=9191 (repeatable)', collect, [])
    .option('--bundle <file>', 'policy bundle (.tar.gz); default: the embedded default')
    .action(async (opts: { config?: string; set: string[]; bundle?: string }) => {
      const overrides = [...opts.set, ...(opts.bundle ? [`policy.bundle=${opts.bundle}`] : [])];
      // Validated in a worker thread: zod and the schema never load into the serving heap (docs/memory.md).
      const config = await loadConfigIsolated({ file: opts.config, overrides });
      const logger = createLogger(config.log.level);
      applyHeapGrowing(config);
      // From here on every stderr line is JSON: grpc-js's log, signals and a failed start go through `logger`.
      routeGrpcLog(logger);
      try {
        if (cluster.isPrimary && workerCount(config) > 1) await servePrimary(config, logger.child({ role: 'primary' }));
        else await serveProcess(config, cluster.isWorker ? logger.child({ worker: cluster.worker?.id }) : logger);
      } catch (err) {
        failStart(err, logger);
      }
    });
}

/**
 * A start that fails is one JSON line with its code, then exit 1. A worker hands its code to the primary
 * (verdict:failed), which logs that one line for the cluster (WorkerFailed: already logged there).
 */
function failStart(err: unknown, logger: Logger): never {
  if (err instanceof WorkerFailed) process.exit(1);
  const code = err instanceof VerdictError ? err.code : 'ERR_INTERNAL';
  const detail = boundedText(err instanceof Error ? err.message : String(err));
  if (cluster.isWorker && process.send) {
    process.send({ type: 'verdict:failed', code, detail } satisfies WorkerFailure, () => process.exit(1));
    return undefined as never;
  }
  logger.fatal(err instanceof VerdictError ? { code, detail } : { code, err: boundedError(err) }, 'verdict cannot start');
  process.exit(1);
}

/** Cluster primary: supervises workers; it decides nothing itself. */
async function servePrimary(config: Config, logger: Logger): Promise<void> {
  const supervisor = new ClusterSupervisor(config, logger);
  onSignals(() => supervisor.stop(), logger);
  await supervisor.start();
}

/** A single process, or one cluster worker: the whole decision path; the primary serves ops endpoints. */
async function serveProcess(config: Config, logger: Logger): Promise<void> {
  const inWorker = cluster.isWorker;
  const metrics = new Metrics({ eventLoopResolutionMs: config.server.http.eventLoopResolutionMs });
  onCrash(logger, metrics);
  const verdict = await startVerdict(inWorker ? workerConfig(config) : config, { logger, metrics });
  startMallocTrim(config, logger, metrics);
  startGcMarking(config, logger, metrics, { received: verdict.received });
  if (inWorker) {
    // Constructing an aggregator installs prom-client's worker-side IPC responder.
    new AggregatorRegistry();
    AggregatorRegistry.setRegistries([verdict.metrics.registry]);
    const serving = (): boolean => verdict.policy.current !== null;
    process.send?.({ type: 'verdict:ready', grpcPort: verdict.grpcPort, serving: serving() } satisfies WorkerReady);
    // The primary's /readyz reflects whether any worker has a bundle to decide with.
    verdict.policy.on('swap', () => process.send?.({ type: 'verdict:ready', grpcPort: verdict.grpcPort, serving: serving() }));
  }
  // Health NOT_SERVING first, answer for the drain window, then drain and close (docs/zero-loss-restarts.md).
  onSignals(
    () =>
      drainThenStop(verdict, {
        windowMs: config.server.drainWindowMs,
        onPhase: (phase) => logger.info({ phase, drainWindowMs: config.server.drainWindowMs }, `shutdown: ${phase}`),
      }),
    logger,
  );
}

/**
 * A worker's view of the config: no ops listener (the primary serves it), and its own decision-log spool
 * and file (two processes must never append to one spool or rotate one file; per-slot paths keep a
 * restarted worker on the files of the one it replaces).
 */
function workerConfig(config: Config): Config {
  const slot = config.server.workerSlot ?? 0;
  const log = config.decisionLog;
  return {
    ...config,
    server: { ...config.server, http: { ...config.server.http, port: null } },
    decisionLog: {
      ...log,
      spool: { ...log.spool, dir: log.spool.dir === null ? null : join(log.spool.dir, `worker-${slot}`) },
      file: log.file ? { ...log.file, path: log.file.path.replace(/(\.[^./]*)?$/, `.worker-${slot}$1`) } : log.file,
    },
  };
}

/**
 * Last line of defence: anything that reaches the top level (a bug, never a bundle or a request — those
 * are refused with codes) is logged with its stack and counted before the process exits, so the crash
 * is seen. The state after an uncaught exception is unknown: exiting (and letting the supervisor or the
 * cluster primary restart) is safer than serving on. The line reaches stderr through the sink's flush at
 * exit (log-sink.ts).
 */
function onCrash(logger: Logger, metrics: Metrics): void {
  const die = (kind: string) => (err: unknown) => {
    metrics.uncaughtExceptions.inc({ kind });
    logger.fatal({ kind, err: boundedError(err) }, 'uncaught exception; exiting');
    process.exit(70);
  };
  process.on('uncaughtException', die('exception'));
  process.on('unhandledRejection', die('rejection'));
}

function onSignals(stop: () => Promise<void>, logger: Logger): void {
  let stopping = false;
  const handler = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'draining');
    void stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => handler('SIGTERM'));
  process.on('SIGINT', () => handler('SIGINT'));
}
