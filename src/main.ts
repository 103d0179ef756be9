import type { ServerCredentials } from '@grpc/grpc-js';
import { existsSync } from 'node:fs';
import { systemClock, type Clock } from './clock';
import type { Config } from './config/schema';
import { setUpDecisionCache, type CacheParts } from './cache/cache-setup';
import { toolPath } from './cli/tools';
import { DecisionPipeline } from './decision/decision-pipeline';
import { createDecisionLog } from './decisionlog/decision-log-setup';
import type { DecisionLog } from './decisionlog/decision-record';
import { VerdictError } from './errors';
import { startFastpath, type Fastpath } from './fastpath/fastpath';
import type { IdentityRuntime } from './identity/start-identity';
import { startKernelTelemetry, type KernelTelemetry } from './kerneltelemetry/kernel-telemetry';
import { defaultBundlePath } from './package-root';
import type { BundleLoader } from './policy/bundle-loader';
import { startBundleLoader } from './policy/bundle-startup';
import { configureEngines } from './policy/engine-registry';
import { PolicyStore } from './policy/policy-store';
import { loadEvalDeadline } from './policy/eval-deadline';
import { engineOptionsOf } from './policy/policy-engine';
import { GrpcServer } from './server/grpc-server';
import { selectServerTLS } from './server/select-server-tls';
import type { ServerTLS } from './server/server-tls';
import { HttpAuthzServer } from './server/http-authz-server';
import { startShadow, type ShadowRuntime } from './shadow/start-shadow';
import { startTenants, type TenantsRuntime } from './tenancy/start-tenants';
import { OpsHttpServer } from './server/http-server';
import { createLogger, type Logger } from './telemetry/logger';
import { Metrics } from './telemetry/metrics';

export interface VerdictOptions {
  logger?: Logger;
  clock?: Clock;
  decisionLog?: DecisionLog;
  /** TLS for the gRPC listener the grpc-js way (e.g. ServerCredentials.createSsl); overrides identity.mtls. */
  credentials?: ServerCredentials;
  /** TLS for the gRPC listener as verdict's own interface (src/server/server-tls.ts); wins over both. */
  tls?: ServerTLS;
  /** The metrics registry to use (the CLI makes it first so its crash handler can count into it). */
  metrics?: Metrics;
}

export interface RunningVerdict {
  grpcPort: number;
  httpPort: number | null;
  /** Port of Envoy's HTTP ext_authz protocol (config httpAuthz.port); null when disabled. */
  httpAuthzPort: number | null;
  policy: PolicyStore;
  /** The bundle source follower, when bundles.source (or a bundle key/pin) is configured. */
  bundles: BundleLoader | null;
  metrics: Metrics;
  fastpath: Fastpath;
  /** Identity-aware kernel telemetry (docs/kernel-telemetry.md); the disabled twin when off. */
  kernelTelemetry: KernelTelemetry;
  /** Checks received so far over gRPC and HTTP authz, a running count. */
  received(): number;
  /** The decision cache; null when cache.enabled is false. */
  cache: CacheParts | null;
  /** SPIFFE identity (Workload API client, bundles); null when identity is disabled. */
  identity: IdentityRuntime | null;
  /** The candidate bundle under shadow evaluation (policy.shadow); null when not configured. */
  shadow: ShadowRuntime | null;
  /** One bundle, cache and counts per tenant (config `tenants`); null when not configured. */
  tenants: TenantsRuntime | null;
  /** Health NOT_SERVING (gRPC health and /readyz) while Checks are still answered: the drain window's start. */
  beginDrain(): void;
  stop(): Promise<void>;
}

/** Composition root: build the parts from a frozen Config and start them. No logic of its own. */
export async function startVerdict(config: Config, options: VerdictOptions = {}): Promise<RunningVerdict> {
  const logger = options.logger ?? createLogger(config.log.level);
  const clock = options.clock ?? systemClock;
  // Before anything starts: a bad descriptor set refuses the start (ERR_CONFIG) with nothing to undo.
  // Features that are off are not even loaded (protobufjs, OpenTelemetry): docs/memory.md.
  const grpcBodyTypes =
    config.policy.protoDescriptor === null
      ? undefined
      : (await import('./request/grpc-body-types')).GRPCBodyTypes.fromFile(config.policy.protoDescriptor);
  const metrics = options.metrics ?? new Metrics({ eventLoopResolutionMs: config.server.http.eventLoopResolutionMs });
  const decisionLog = options.decisionLog ?? (await createDecisionLog(config, { metrics, logger, clock }));
  const policy = new PolicyStore({
    ...engineOptionsOf(config),
    loadTimeoutMs: config.bundles.loadTimeoutMs,
    onRecycle: (why) => metrics.engineRecycles.inc({ engine: 'opa', why }),
  });
  const stopper = loadEvalDeadline();
  if ('reason' in stopper)
    logger.info({ reason: stopper.reason }, 'OPA evaluations are held to policy.timeoutMs after they return, not stopped while they run');
  wirePolicyTelemetry(policy, metrics, logger);
  // Off (one log line + metric saying why) unless configured and the kernel allows it.
  const fastpath = startFastpath(config.fastpath, { clock, logger, metrics });
  policy.on('swap', ({ current }) => fastpath.onPolicySwap(current));
  // After the fast path: its connect programs must run first so telemetry sees their refusals.
  const kernelTelemetry = startKernelTelemetry(config.kernelTelemetry, {
    clock,
    logger,
    metrics,
    decisionLog,
    workerSlot: config.server.workerSlot,
  });

  const cache = config.cache.enabled ? setUpDecisionCache(config, { policy, metrics, logger, clock, opa: toolPath('opa') }) : null;
  configureEngines(config.engines);
  const bundles = await startBundleLoader(
    config,
    policy,
    {
      clock,
      onSourceError: (e) => {
        metrics.bundleLoads.inc({ outcome: 'source-error', reason: e.code });
        logger.warn({ code: e.code, detail: e.message }, 'policy bundle source failed');
      },
      onPersisted: ({ bundle }, why) => {
        metrics.bundleLoads.inc({ outcome: 'persisted', reason: why.code });
        logger.warn(
          { code: why.code, detail: why.message, bundle: bundle.name, revision: bundle.revision, sha256: bundle.sha256 },
          'bundle source gave no usable bundle at start; serving the persisted last good bundle',
        );
      },
    },
    resolveBundlePath,
  );
  // No good bundle at all is not fatal: NOT_SERVING until the followed source delivers one.
  if (policy.current === null)
    logger.error({ code: 'ERR_POLICY_NOT_LOADED' }, 'no policy bundle could be activated; NOT_SERVING until one is');
  // SPIFFE identity and OIDC tokens (jose) are loaded only when configured (docs/memory.md).
  const identity = config.identity.enabled
    ? (await import('./identity/start-identity')).startIdentity(config.identity, { clock, logger })
    : null;
  // A trust-bundle change may revoke what earlier verdicts relied on: drop cached and kernel verdicts.
  identity?.workloadAPI?.on('bundles', () => {
    metrics.trustBundleUpdates.inc();
    cache?.store.invalidate();
    fastpath.bumpGeneration('trust bundle change');
  });
  if (identity) {
    metrics.identitySource = () => {
      const own = identity.workloadAPI?.currentX509SVID?.certificates[0];
      return { ready: identity.isReady(), ownSVIDExpiresAtMs: own ? Date.parse(own.validTo) : null };
    };
  }
  // OIDCTokenStep.fromConfig is null without issuers; the check here also spares loading it.
  const tokens =
    config.identity.jwt.enabled && config.identity.jwt.issuers.length > 0
      ? (await import('./identity/oidc-token-step')).OIDCTokenStep.fromConfig(config.identity, { clock, logger })
      : null;
  const shadow = startShadow(config, { decisionLog, metrics, logger, clock, grpcBodyTypes });
  const tenants = startTenants(config, { metrics, logger, clock });
  const observers = [
    ...(fastpath.observer ? [fastpath.observer] : []),
    ...(kernelTelemetry.observer ? [kernelTelemetry.observer] : []),
    ...(shadow ? [shadow.evaluator] : []),
    ...(tenants ? [tenants] : []),
  ];
  const tracer = config.tracing.enabled ? new (await import('./telemetry/tracing')).CheckTracer(config.tracing) : null;
  const pipeline = new DecisionPipeline({
    config,
    ...(grpcBodyTypes ? { grpcBodyTypes } : {}),
    policy,
    decisionLog,
    metrics,
    clock,
    observers,
    ...(cache ? { cache } : {}),
    ...(identity ? { identity: identity.step } : {}),
    ...(tokens ? { tokens } : {}),
    ...(tenants ? { tenants } : {}),
    ...(tracer ? { tracer } : {}),
  });
  const tls = selectServerTLS(config, identity?.workloadAPI ?? null, identity?.intermediates, options);
  const grpcServer = new GrpcServer({ config, pipeline, metrics, logger, clock, ...(tls ? { tls } : {}) });
  const bound = await grpcServer.start();
  let draining = false;
  const canDecide = (): boolean => policy.current !== null && (identity?.isReady() ?? true);
  // Once draining, nothing (an identity change) may turn health back to SERVING.
  const serving = (): boolean => !draining && canDecide();
  grpcServer.setServing(serving());
  identity?.onReadyChange(() => grpcServer.setServing(serving()));
  policy.on('swap', () => grpcServer.setServing(serving()));

  let httpServer: OpsHttpServer | null = null;
  let httpPort: number | null = null;
  if (config.server.http.port !== null) {
    httpServer = new OpsHttpServer({
      host: config.server.http.host,
      port: config.server.http.port,
      // The registry first: its verdict_kernel_telemetry_enabled collector does the scrape's one kernel read.
      metricsText: async () => `${await metrics.registry.metrics()}${kernelTelemetry.metricsText()}`,
      metricsContentType: metrics.registry.contentType,
      isReady: serving,
      onConnectionDropped: () => metrics.connectionsDropped.inc({ listener: 'ops' }),
      onConnectionStalled: () => metrics.transportRefusals.inc({ listener: 'ops', code: 'ERR_CONNECTION_STALLED' }),
    });
    httpPort = await httpServer.start();
  }
  let httpAuthz: HttpAuthzServer | null = null;
  let httpAuthzPort: number | null = null;
  if (config.httpAuthz.port !== null) {
    httpAuthz = new HttpAuthzServer({ config, pipeline, metrics, logger });
    httpAuthzPort = await httpAuthz.start();
  }
  logger.info({ grpcPort: bound.port, unixSocket: bound.unixSocket, httpPort, httpAuthzPort, serving: canDecide() }, 'verdict serving');

  return {
    grpcPort: bound.port,
    httpPort,
    httpAuthzPort,
    policy,
    bundles,
    metrics,
    fastpath,
    kernelTelemetry,
    cache,
    identity,
    shadow,
    tenants,
    received: () => grpcServer.received + (httpAuthz?.received ?? 0),
    beginDrain() {
      draining = true;
      grpcServer.setServing(false);
    },
    async stop() {
      draining = true;
      await bundles?.stop();
      await grpcServer.stop(config.server.shutdownGraceMs);
      await httpAuthz?.stop();
      identity?.close();
      await httpServer?.stop();
      kernelTelemetry.close();
      fastpath.close();
      await shadow?.stop();
      await tenants?.stop();
      await decisionLog.close();
      await tracer?.shutdown().catch((err: unknown) => logger.warn({ msg: (err as Error).message }, 'trace export at shutdown failed'));
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
    logger.error({ code: err.code, detail: err.message }, 'policy bundle refused');
  });
}
