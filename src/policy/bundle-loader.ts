import { EventEmitter } from 'node:events';
import type { Clock } from '../clock';
import { VerdictError, toVerdictError } from '../errors';
import type { BundleArtifact, PolicyBundle } from './bundle';
import type { BundlePersist } from './bundle-persist';
import type { BundleSource } from './bundle-source';
import { verifyBundle, type BundleTrust } from './bundle-verifier';
import type { ActivePolicy, PolicyStore } from './policy-store';

export interface BundleLoaderOptions {
  store: PolicyStore;
  source: BundleSource;
  trust: BundleTrust;
  persist: BundlePersist | null;
  /** Refuse a signed bundle whose signing time is older than the newest one activated (rollback). */
  rejectOlderSignatures: boolean;
  clock: Clock;
}

/**
 * Runs one bundle source: fetch → verify → activate (the store instantiates and self-tests) → persist.
 * Offers are serialized, so two deliveries never race to the swap. Any failure leaves the serving bundle
 * in place; refusals are reported through the store's 'rejected' event (one place counts and logs them).
 */
export class BundleLoader extends EventEmitter<{ activated: [ActivePolicy]; 'source-error': [VerdictError] }> {
  private readonly abort = new AbortController();
  private queue: Promise<unknown> = Promise.resolve();
  private newestIssuedAtSec: number | null = null;
  private loop: Promise<void> | null = null;

  constructor(private readonly options: BundleLoaderOptions) {
    super();
  }

  /**
   * First activation: the source, else the persisted last good bundle. Throws when neither yields a
   * bundle (nothing to serve). Then keeps following the source in the background.
   */
  async start(): Promise<ActivePolicy> {
    const persisted = this.options.persist ? await this.options.persist.load() : null;
    if (persisted?.opaIssuedAtSec != null) this.newestIssuedAtSec = persisted.opaIssuedAtSec;
    let first: ActivePolicy | null = null;
    let firstError: VerdictError | null = null;
    const artifact = await this.fetch().catch((err: VerdictError) => {
      firstError = err;
      return null;
    });
    if (artifact !== null) first = await this.offer(artifact).catch((err: unknown) => ((firstError = toVerdictError(err)), null));
    if (first === null && persisted !== null) {
      // Serve the last good bundle until the source answers; it is verified again like any delivery.
      first = await this.offer(persisted, { persist: false });
    }
    if (first === null)
      throw firstError ?? new VerdictError('ERR_POLICY_NOT_LOADED', `${this.options.source.description} delivered no bundle`);
    this.loop = this.follow();
    return first;
  }

  /** Verifies and activates one delivered bundle; serialized with every other offer. */
  offer(artifact: BundleArtifact, opts: { persist?: boolean } = {}): Promise<ActivePolicy> {
    const run = this.queue.then(() => this.activate(artifact, opts.persist ?? true));
    this.queue = run.catch(() => undefined);
    return run;
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.options.source.close();
    await this.loop;
    await this.queue;
  }

  private async follow(): Promise<void> {
    const { signal } = this.abort;
    let failed = false;
    while (!signal.aborted) {
      await this.options.source.waitForChange(signal, failed);
      if (signal.aborted) return;
      failed = false;
      const artifact = await this.fetch().catch(() => ((failed = true), null));
      if (artifact !== null) await this.offer(artifact).catch(() => undefined);
    }
  }

  /** One fetch; an unreachable source is reported as 'source-error', anything else (too large…) as a refusal. */
  private async fetch(): Promise<BundleArtifact | null> {
    try {
      return await this.options.source.fetch();
    } catch (err) {
      const e = toVerdictError(err, 'ERR_BUNDLE_SOURCE');
      if (e.code === 'ERR_BUNDLE_SOURCE') this.emit('source-error', e);
      else this.options.store.refuse(e);
      throw e;
    }
  }

  private async activate(artifact: BundleArtifact, persist: boolean): Promise<ActivePolicy> {
    let bundle: PolicyBundle;
    try {
      bundle = await verifyBundle(artifact, this.options.trust);
      this.checkRollback(bundle);
    } catch (err) {
      throw this.options.store.refuse(toVerdictError(err, 'ERR_BUNDLE_INVALID'));
    }
    const active = await this.options.store.activate(bundle);
    const iat = bundle.signer?.opa?.issuedAtSec ?? null;
    if (iat !== null && (this.newestIssuedAtSec === null || iat > this.newestIssuedAtSec)) this.newestIssuedAtSec = iat;
    if (persist && this.options.persist) {
      // A failed save costs only restart resilience; the bundle is already serving.
      await this.options.persist.save(artifact, bundle.sha256, iat, this.options.clock.nowMs()).catch((err: unknown) => {
        this.emit('source-error', new VerdictError('ERR_BUNDLE_SOURCE', `cannot persist bundle: ${(err as Error).message}`));
      });
    }
    this.emit('activated', active);
    return active;
  }

  private checkRollback(bundle: PolicyBundle): void {
    const iat = bundle.signer?.opa?.issuedAtSec ?? null;
    if (!this.options.rejectOlderSignatures || iat === null || this.newestIssuedAtSec === null) return;
    if (iat < this.newestIssuedAtSec) {
      throw new VerdictError('ERR_BUNDLE_REPLAY', `bundle signed at ${iat} is older than the newest activated (${this.newestIssuedAtSec})`);
    }
  }
}
