import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BundlesConfig } from '../config/sections/bundles';
import type { BundleArtifact } from './bundle';
import { readRegularFileBounded } from './bundle-file-read';
import type { StagedArtifact } from './bundle-source';
import { StagedBundle, stagingFor, type StagingOptions } from './bundle-staged';

const MAX_SMALL_FILE_BYTES = 1024 * 1024;

interface PersistMeta {
  origin: string;
  sha256: string;
  ociDigest?: string | undefined;
  hasSignature: boolean;
  /** Signing time of the OPA signature: the rollback floor after a restart. */
  opaIssuedAtSec: number | null;
  savedAtMs: number;
}

/** What the persisted last good bundle says of itself, and how to get it (only when it is to be served). */
export interface PersistedBundle {
  sha256: string;
  /** The rollback floor (the persisted bundle's signing time). */
  opaIssuedAtSec: number | null;
  /** The bundle file staged in a bundle worker (read there, like a watched file), with its signature; null when torn. */
  artifact(): Promise<StagedArtifact | null>;
}

/** The persisted last good bundle of a `bundles`-shaped section (`persistDir`), bounded and staged by its limits; null when off. */
export function persistFromConfig(config: BundlesConfig): BundlePersist | null {
  if (config.persistDir === null) return null;
  return new BundlePersist(config.persistDir, config.limits.maxCompressedBytes, stagingFor(config.limits, config.loadTimeoutMs));
}

/**
 * The last bundle that was activated, kept on disk so a restart serves it while the source is down. It
 * is stored as delivered (with its cosign signature) and re-verified on load with the same keys and pin:
 * the disk is not trusted more than the network. Writes go to a temp name then rename (atomic on POSIX).
 */
export class BundlePersist {
  /**
   * `maxBytes`: the bundle bound (bundles.limits.maxCompressedBytes); the disk is read as boundedly as the
   * network, and by the bundle worker `staging` sizes, never on the event loop.
   */
  constructor(
    private readonly dir: string,
    private readonly maxBytes: number,
    private readonly staging: StagingOptions = stagingFor(),
  ) {}

  /** `bytes`: the artifact's file (a staged artifact's, taken back from its worker). */
  async save(artifact: BundleArtifact, bytes: Buffer, sha256: string, opaIssuedAtSec: number | null, nowMs: number): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await this.atomicWrite('bundle.tar.gz', bytes);
    if (artifact.cosignSignature !== undefined) await this.atomicWrite('bundle.sig', artifact.cosignSignature);
    const meta: PersistMeta = {
      origin: artifact.origin,
      sha256,
      ociDigest: artifact.ociDigest,
      hasSignature: artifact.cosignSignature !== undefined,
      opaIssuedAtSec,
      savedAtMs: nowMs,
    };
    // meta.json last: it names what the two files above must be, so a torn save is detected on load.
    await this.atomicWrite('meta.json', Buffer.from(JSON.stringify(meta)));
  }

  /** The persisted bundle's meta, or null when there is none; its file is staged only when asked for. */
  async load(): Promise<PersistedBundle | null> {
    let meta: PersistMeta;
    try {
      const raw = await readRegularFileBounded(join(this.dir, 'meta.json'), MAX_SMALL_FILE_BYTES, 'persisted meta');
      meta = JSON.parse(raw.toString('utf8')) as PersistMeta;
    } catch {
      return null;
    }
    return {
      sha256: meta.sha256,
      opaIssuedAtSec: typeof meta.opaIssuedAtSec === 'number' ? meta.opaIssuedAtSec : null,
      artifact: () => this.artifact(meta),
    };
  }

  private async artifact(meta: PersistMeta): Promise<StagedArtifact | null> {
    let cosignSignature: Buffer | undefined;
    try {
      cosignSignature = meta.hasSignature
        ? await readRegularFileBounded(join(this.dir, 'bundle.sig'), MAX_SMALL_FILE_BYTES, 'persisted signature')
        : undefined;
      const bytes = await StagedBundle.fromFile(join(this.dir, 'bundle.tar.gz'), this.maxBytes, 'persisted bundle', this.staging);
      return { bytes, origin: `persisted ${meta.origin}`, cosignSignature, ociDigest: meta.ociDigest };
    } catch {
      return null;
    }
  }

  private async atomicWrite(name: string, data: Buffer): Promise<void> {
    const tmp = join(this.dir, `.${name}.${process.pid}.tmp`);
    await writeFile(tmp, data, { mode: 0o600 });
    await rename(tmp, join(this.dir, name));
  }
}
