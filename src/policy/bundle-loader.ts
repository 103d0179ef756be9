import { EventEmitter } from 'node:events';
import type { Clock } from '../clock';
import { VerdictError, toVerdictError } from '../errors';
import type { PolicyBundle } from './bundle';
import type { BundlePersist } from './bundle-persist';
import type { BundleSource, StagedArtifact } from './bundle-source';
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
export class BundleLoader extends EventEmitter<{
  activated: [ActivePolicy];
  'source-error': [VerdictError];
  /** At start, the source gave no usable bundle (why) and the persisted one serves. */
  persisted: [ActivePolicy, VerdictError];
}> {
  private readonly abort = new AbortController();
  private queue: Promise<unknown> = Promise.resolve();
  private newestIssuedAtSec: number | null = null;
  private loop: Promise<void> | null = null;

  constructor(private readonly options: BundleLoaderOptions) {
    super();
  }

  /**
   * First activation: the source, else the persisted last good bundle (said with a 'persisted' event).
   * Never throws for a bundle: with neither, it resolves null — the server starts NOT_SERVING — and the
   * source keeps being followed, so a good bundle heals it without a restart. Then follows the source.
   */
  async start(): Promise<ActivePolicy | null> {
    const persisted = this.options.persist ? await this.options.persist.load() : null;
    if (persisted?.opaIssuedAtSec != null) this.newestIssuedAtSec = persisted.opaIssuedAtSec;
    let firstError: VerdictError | null = null;
    const noteError = (err: unknown): null => ((firstError = toVerdictError(err, 'ERR_BUNDLE_INVALID')), null);
    const artifact = await this.fetch().catch(noteError);
    let first = artifact !== null ? await this.offer(artifact).catch(noteError) : null;
    if (first === null && persisted !== null) {
      // Serve the last good bundle until the source answers; it is verified again like any delivery.
      const stored = await persisted.artifact();
      first = stored === null ? null : await this.offer(stored, { persist: false }).catch(() => null);
      const why = firstError ?? new VerdictError('ERR_POLICY_NOT_LOADED', `${this.options.source.description} delivered no bundle`);
      if (first !== null) this.emit('persisted', first, why);
    }
    this.loop = this.follow();
    return first;
  }

  /** Verifies and activates one delivered bundle; serialized with every other offer. */
  offer(artifact: StagedArtifact, opts: { persist?: boolean } = {}): Promise<ActivePolicy> {
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
      // A refusal is counted where it happens (store 'rejected'); the loop itself never ends on one.
      if (artifact !== null) await this.offer(artifact).catch(() => (failed = true));
    }
  }

  /** One fetch; an unreachable source is reported as 'source-error', anything else (too large…) as a refusal. */
  private async fetch(): Promise<StagedArtifact | null> {
    try {
      return await this.options.source.fetch();
    } catch (err) {
      const e = toVerdictError(err, 'ERR_BUNDLE_SOURCE');
      if (e.code === 'ERR_BUNDLE_SOURCE') this.emit('source-error', e);
      else this.options.store.refuse(e);
      throw e;
    }
  }

  private async activate(artifact: StagedArtifact, persist: boolean): Promise<ActivePolicy> {
    const { bytes } = artifact;
    let bundle: PolicyBundle;
    let file: Buffer | null = null;
    try {
      bundle = await verifyBundle(artifact, this.options.trust);
      this.checkRollback(bundle);
      // The file comes to the event loop only now, accepted, and only to be persisted.
      if (persist && this.options.persist) file = await bytes.bytes().catch(() => null);
    } catch (err) {
      throw this.options.store.refuse(toVerdictError(err, 'ERR_BUNDLE_INVALID'));
    } finally {
      bytes.close();
    }
    const active = await this.options.store.activate(bundle);
    const iat = bundle.signer?.opa?.issuedAtSec ?? null;
    if (iat !== null && (this.newestIssuedAtSec === null || iat > this.newestIssuedAtSec)) this.newestIssuedAtSec = iat;
    if (persist && this.options.persist) {
      // A failed save costs only restart resilience; the bundle is already serving.
      try {
        if (file === null) throw new Error('the bundle file could not be taken back from its worker');
        await this.options.persist.save(artifact, file, bundle.sha256, iat, this.options.clock.nowMs());
      } catch (err) {
        this.emit('source-error', new VerdictError('ERR_BUNDLE_SOURCE', `cannot persist bundle: ${(err as Error).message}`));
      }
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
