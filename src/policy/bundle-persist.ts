import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BundleArtifact } from './bundle';
import { readRegularFileBounded } from './bundle-file-read';

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

/**
 * The last bundle that was activated, kept on disk so a restart serves it while the source is down. It
 * is stored as delivered (with its cosign signature) and re-verified on load with the same keys and pin:
 * the disk is not trusted more than the network. Writes go to a temp name then rename (atomic on POSIX).
 */
export class BundlePersist {
  /** `maxBytes`: the bundle bound (bundles.limits.maxCompressedBytes); the disk is read as boundedly as the network. */
  constructor(
    private readonly dir: string,
    private readonly maxBytes: number,
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

  /** The persisted artifact, or null when there is none or it is incomplete. */
  async load(): Promise<(BundleArtifact & { sha256: string; opaIssuedAtSec: number | null }) | null> {
    let meta: PersistMeta;
    try {
      const raw = await readRegularFileBounded(join(this.dir, 'meta.json'), MAX_SMALL_FILE_BYTES, 'persisted meta');
      meta = JSON.parse(raw.toString('utf8')) as PersistMeta;
    } catch {
      return null;
    }
    try {
      const bytes = await readRegularFileBounded(join(this.dir, 'bundle.tar.gz'), this.maxBytes, 'persisted bundle');
      const cosignSignature = meta.hasSignature
        ? await readRegularFileBounded(join(this.dir, 'bundle.sig'), MAX_SMALL_FILE_BYTES, 'persisted signature')
        : undefined;
      return {
        bytes,
        origin: `persisted ${meta.origin}`,
        cosignSignature,
        ociDigest: meta.ociDigest,
        sha256: meta.sha256,
        opaIssuedAtSec: typeof meta.opaIssuedAtSec === 'number' ? meta.opaIssuedAtSec : null,
      };
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
