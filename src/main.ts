import type { ServerCredentials } from '@grpc/grpc-js';
import { existsSync } from 'node:fs';
import { systemClock, type Clock } from './clock';
import type { Config } from './config/schema';
import { DecisionPipeline } from './decision/decision-pipeline';
import { StreamDecisionLog } from './decisionlog/decision-log-stream';
import type { DecisionLog } from './decisionlog/decision-record';
import { VerdictError } from './errors';
import { defaultBundlePath } from './package-root';
import { BundleLoader } from './policy/bundle-loader';
import { startBundleLoader } from './policy/bundle-startup';
import { PolicyStore } from './policy/policy-store';
import { GrpcServer } from './server/grpc-server';
import { OpsHttpServer } from './server/http-server';
import { createLogger, type Logger } from './telemetry/logger';
import { Metrics } from './telemetry/metrics';

export interface VerdictOptions {
  logger?: Logger;
  clock?: Clock;
  decisionLog?: DecisionLog;
  credentials?: ServerCredentials;
}

export interface RunningVerdict {
  grpcPort: number;
  httpPort: number | null;
  policy: PolicyStore;
  /** The bundle source follower, when bundles.source (or a bundle key/pin) is configured. */
  bundles: BundleLoader | null;
  metrics: Metrics;
  stop(): Promise<void>;
}

/** Composition root: build the parts from a frozen Config and start them. No logic of its own. */
export async function startVerdict(config: Config, options: VerdictOptions = {}): Promise<RunningVerdict> {
  const logger = options.logger ?? createLogger(config.log.level);
  const clock = options.clock ?? systemClock;
  const metrics = new Metrics();
  const decisionLog = options.decisionLog ?? new StreamDecisionLog(config.decisionLog.console ? process.stdout : null);
  const policy = new PolicyStore({
    entrypoint: config.policy.entrypoint,
    maxMemoryPages: config.policy.maxMemoryPages,
    recycleMemoryPages: config.policy.recycleMemoryPages,
    onRecycle: (why) => metrics.engineRecycles.inc({ engine: 'opa', why }),
  });
  wirePolicyTelemetry(policy, metrics, logger);

  const bundles = await startBundleLoader(
    config,
    policy,
    {
      clock,
      onSourceError: (e) => {
        metrics.bundleLoads.inc({ outcome: 'source-error', reason: e.code });
        logger.warn({ code: e.code, msg: e.message }, 'policy bundle source failed');
      },
    },
    resolveBundlePath,
  );
  if (bundles === null) await policy.activateFile(resolveBundlePath(config));
  const pipeline = new DecisionPipeline({ config, policy, decisionLog, metrics, clock });
  const grpcServer = new GrpcServer({
    config,
    pipeline,
    metrics,
    logger,
    ...(options.credentials ? { credentials: options.credentials } : {}),
  });
  const bound = await grpcServer.start();
  grpcServer.setServing(policy.current !== null);

  let draining = false;
  let httpServer: OpsHttpServer | null = null;
  let httpPort: number | null = null;
  if (config.server.http.port !== null) {
    httpServer = new OpsHttpServer({
      host: config.server.http.host,
      port: config.server.http.port,
      metrics,
      isReady: () => !draining && policy.current !== null,
    });
    httpPort = await httpServer.start();
  }
  logger.info({ grpcPort: bound.port, unixSocket: bound.unixSocket, httpPort }, 'verdict serving');

  return {
    grpcPort: bound.port,
    httpPort,
    policy,
    bundles,
    metrics,
    async stop() {
      draining = true;
      await bundles?.stop();
      await grpcServer.stop(config.server.shutdownGraceMs);
      await httpServer?.stop();
      await decisionLog.close();
      logger.info('verdict stopped');
    },
  };
}

function resolveBundlePath(config: Config): string {
  if (config.policy.bundle !== null) return config.policy.bundle;
  const path = defaultBundlePath();
  if (!existsSync(path)) {
    throw new VerdictError('ERR_POLICY_NOT_LOADED', `the embedded default bundle ${path} is missing: run "npm run build" first`);
  }
  return path;
}

function wirePolicyTelemetry(policy: PolicyStore, metrics: Metrics, logger: Logger): void {
  policy.on('swap', ({ previous, current }) => {
    const { name, revision, sha256 } = current.bundle;
    if (previous)
      metrics.bundleInfo.remove({
        name: previous.bundle.name,
        revision: previous.bundle.revision,
        sha256: previous.bundle.sha256,
        engine: previous.engine.kind,
      });
    metrics.bundleInfo.set({ name, revision, sha256, engine: current.engine.kind }, 1);
    metrics.bundleLoads.inc({ outcome: 'activated', reason: 'OK' });
    logger.info({ bundle: name, revision, sha256, engine: current.engine.kind, generation: current.generation }, 'policy bundle active');
  });
  policy.on('rejected', (err) => {
    metrics.bundleLoads.inc({ outcome: 'rejected', reason: err.code });
    logger.error({ code: err.code, msg: err.message }, 'policy bundle refused');
  });
}
