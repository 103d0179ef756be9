import type { Clock } from '../clock';
import type { Config } from '../config/schema';
import type { DecisionLog } from '../decisionlog/decision-record';
import type { BundleLoader } from '../policy/bundle-loader';
import { loaderFromSection, startLoaderInBackground } from '../policy/bundle-loader-background';
import { PolicyStore } from '../policy/policy-store';
import { engineOptionsOf } from '../policy/policy-engine';
import type { GRPCBodyTypes } from '../request/grpc-body-types';
import type { Logger } from '../telemetry/logger';
import type { Metrics } from '../telemetry/metrics';
import { ShadowEvaluator } from './shadow-evaluator';
import { ShadowMetrics } from './shadow-metrics';

export interface ShadowRuntime {
  evaluator: ShadowEvaluator;
  /** The candidate's own store: promoting the candidate is publishing it to the active source (a normal swap). */
  store: PolicyStore;
  loader: BundleLoader;
  metrics: ShadowMetrics;
  stop(): Promise<void>;
}

export interface ShadowDeps {
  decisionLog: DecisionLog;
  metrics: Metrics;
  logger: Logger;
  clock: Clock;
  random?: () => number;
  /** policy.protoDescriptor's types, so the candidate sees gRPC bodies as the active policy does. */
  grpcBodyTypes?: GRPCBodyTypes | undefined;
}

/**
 * Starts the candidate's bundle follower (the same source/verifier/loader machinery as the active bundle,
 * with its own trust) and the evaluator. Null when `policy.shadow` is not configured. A candidate that cannot
 * be loaded never stops verdict: shadow evaluation waits (outcome="no_candidate") and the loader retries.
 */
export function startShadow(config: Config, deps: ShadowDeps): ShadowRuntime | null {
  const shadow = config.policy.shadow;
  if (shadow === null) return null;
  const metrics = new ShadowMetrics(deps.metrics.registry);
  const store = new PolicyStore(engineOptionsOf(config));
  wireCandidateTelemetry(store, metrics, deps.logger);
  const loader = loaderFromSection(shadow.bundles, store, deps.clock, 'policy.shadow');
  loader.on('source-error', (e) => {
    metrics.bundleLoads.inc({ outcome: 'source-error', reason: e.code });
    deps.logger.warn({ code: e.code, msg: e.message }, 'shadow bundle source failed');
  });
  const evaluator = new ShadowEvaluator({
    candidate: () => store.current,
    sampleRate: shadow.sampleRate,
    maxQueue: shadow.maxQueue,
    maxQueueBytes: shadow.maxQueueBytes,
    maxCPUShare: shadow.maxCPUShare,
    timeoutMs: config.policy.timeoutMs,
    denyStatus: config.decision.denyStatus,
    errorStatus: config.decision.errorStatus,
    limits: { ...config.limits, grpcBodyTypes: deps.grpcBodyTypes },
    decisionLog: deps.decisionLog,
    metrics,
    clock: deps.clock,
    ...(deps.random ? { random: deps.random } : {}),
  });
  const abort = new AbortController();
  const started = startLoaderInBackground(loader, abort.signal, (err, retryInMs) =>
    deps.logger.warn({ code: err.code, retryInMs }, 'shadow candidate not loaded yet; retrying'),
  );
  return {
    evaluator,
    store,
    loader,
    metrics,
    async stop() {
      abort.abort();
      evaluator.close();
      await loader.stop();
      await started;
      store.current?.engine.close();
    },
  };
}

function wireCandidateTelemetry(store: PolicyStore, metrics: ShadowMetrics, logger: Logger): void {
  store.on('swap', ({ previous, current }) => {
    if (previous) metrics.bundleInfo.reset();
    const { name, revision, sha256 } = current.bundle;
    metrics.bundleInfo.set({ name, revision, sha256, engine: current.engine.kind }, 1);
    metrics.bundleLoads.inc({ outcome: 'activated', reason: 'OK' });
    logger.info({ bundle: name, revision, sha256 }, 'shadow candidate active');
  });
  store.on('rejected', (err) => {
    metrics.bundleLoads.inc({ outcome: 'rejected', reason: err.code });
    logger.error({ code: err.code, msg: err.message }, 'shadow candidate refused');
  });
}
