import type { Clock } from '../clock';
import type { IdentityConfig } from '../config/sections/identity';
import type { Logger } from '../telemetry/logger';
import type { BundleSource } from './bundle-source';
import type { IdentityStep } from './identity-step';
import type { IntermediateSource } from './intermediate-source';
import { combinedIntermediates, intermediatesFromFiles, ownSVIDIntermediates } from './intermediate-source';
import { SPIFFEIdentityStep } from './spiffe-identity-step';
import { ChainedBundleSource, StaticBundleSource } from './static-bundle-source';
import { WorkloadAPIClient } from './workload-api-client';

/** The identity capability as main.ts wires it: the pipeline step, the Workload API client (whose SVID the mTLS listener serves), readiness. */
export interface IdentityRuntime {
  step: IdentityStep;
  bundles: BundleSource;
  workloadAPI: WorkloadAPIClient | null;
  /** Path-building candidates from identity.x509.intermediates (also for the mTLS listener's caller check). */
  intermediates: IntermediateSource;
  /** False until the Workload API's first bundles (and own SVID) arrive, and again when they go stale. */
  isReady(): boolean;
  /** Called with the new readiness whenever it flips. */
  onReadyChange(listener: (ready: boolean) => void): void;
  close(): void;
}

/** Builds the identity runtime from config; null when identity is disabled (the policy sees no `spiffe`). */
export function startIdentity(config: IdentityConfig, deps: { clock: Clock; logger: Logger }): IdentityRuntime | null {
  if (!config.enabled) return null;
  const staticSource = StaticBundleSource.fromFiles(config.staticBundles);
  const workloadAPI = config.workloadAPI.socket
    ? new WorkloadAPIClient({
        socket: config.workloadAPI.socket,
        clock: deps.clock,
        logger: deps.logger,
        reconnectInitialMs: config.workloadAPI.reconnectInitialMs,
        reconnectMaxMs: config.workloadAPI.reconnectMaxMs,
        bundleStalenessMs: config.workloadAPI.bundleStalenessMs,
        fetchX509SVID: config.mtls.enabled || config.x509.intermediates.fromWorkloadAPI,
        x509SVIDRequired: config.mtls.enabled,
      })
    : null;
  const intermediates = combinedIntermediates([
    ...(workloadAPI && config.x509.intermediates.fromWorkloadAPI ? [ownSVIDIntermediates(workloadAPI)] : []),
    ...(config.x509.intermediates.files.length > 0 ? [intermediatesFromFiles(config.x509.intermediates.files)] : []),
  ]);
  const bundles: BundleSource = workloadAPI ? new ChainedBundleSource([workloadAPI, staticSource]) : staticSource;
  workloadAPI?.on('bundles', (tds: string[]) => deps.logger.info({ trustDomains: tds }, 'SPIFFE trust bundles updated'));
  workloadAPI?.on('x509svid', (svid: { spiffeID: string }) => deps.logger.info({ spiffeID: svid.spiffeID }, 'own X509-SVID rotated'));
  workloadAPI?.start();
  return {
    step: new SPIFFEIdentityStep({ config, bundles, clock: deps.clock, intermediates }),
    bundles,
    workloadAPI,
    intermediates,
    isReady: () => workloadAPI?.isReady() ?? true,
    onReadyChange: (listener) => workloadAPI?.on('ready', listener),
    close: () => workloadAPI?.close(),
  };
}
