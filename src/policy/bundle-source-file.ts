import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { isMissingFile, readRegularFileBounded } from './bundle-file-read';
import { sha256Hex } from './bundle-reader';
import { abortableDelay, type BundleSource, type StagedArtifact } from './bundle-source';
import { StagedBundle, stagingFor, type StagingOptions } from './bundle-staged';

/** A cosign signature (detached or a sigstore bundle) is a few KiB; this leaves room for certificate chains. */
const MAX_SIGNATURE_BYTES = 1024 * 1024;

export interface FileSourceOptions {
  path: string;
  /** cosign signature file, read with the bundle; null when none is expected. */
  signaturePath: string | null;
  debounceMs: number;
  /** Bundle files larger than this are refused; the read stops one byte past it. */
  maxBytes: number;
  /** The bundle worker the file is read into (bundle-staged.ts); default: sized for the default limits. */
  staging?: StagingOptions;
}

/**
 * A bundle file on local disk, watched. The parent directory is watched (not the file) so that the
 * atomic publish — write a temp file, rename it over the bundle — is seen even though the inode changes.
 * Events are debounced and the content hash compared, so an unchanged rewrite is not re-activated.
 */
export class FileBundleSource implements BundleSource {
  readonly description: string;
  private watcher: FSWatcher | null = null;
  private pending = false;
  private wake: (() => void) | null = null;
  private lastKey: string | null = null;

  constructor(private readonly options: FileSourceOptions) {
    this.description = `file ${options.path}`;
  }

  /** The bundle file is read and hashed by a bundle worker, where it stays (bundle-staged.ts). */
  async fetch(): Promise<StagedArtifact | null> {
    this.ensureWatching();
    const bytes = await StagedBundle.fromFile(this.options.path, this.options.maxBytes, 'bundle', this.options.staging ?? stagingFor());
    try {
      const cosignSignature = this.options.signaturePath === null ? undefined : await this.signature(this.options.signaturePath);
      const key = `${bytes.sha256}:${cosignSignature ? await sha256Hex(cosignSignature) : ''}`;
      if (key === this.lastKey) {
        bytes.close();
        return null;
      }
      this.lastKey = key;
      return { bytes, origin: this.options.path, cosignSignature };
    } catch (err) {
      bytes.close();
      throw err;
    }
  }

  async waitForChange(signal: AbortSignal): Promise<void> {
    this.ensureWatching();
    if (!this.pending) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          this.wake = null;
          signal.removeEventListener('abort', done);
          resolve();
        };
        this.wake = done;
        signal.addEventListener('abort', done, { once: true });
      });
    }
    // Debounce: a writer may still be writing (or a rename pair is in flight); read once it settles.
    await abortableDelay(this.options.debounceMs, signal);
    this.pending = false;
  }

  close(): void {
    this.watcher?.close();
    this.watcher = null;
    this.wake?.();
  }

  private ensureWatching(): void {
    if (this.watcher !== null) return;
    const names = new Set([basename(this.options.path), ...(this.options.signaturePath ? [basename(this.options.signaturePath)] : [])]);
    this.watcher = watch(dirname(this.options.path), { persistent: false }, (_event, filename) => {
      if (filename !== null && !names.has(filename.toString())) return;
      this.pending = true;
      this.wake?.();
    });
    this.watcher.on('error', () => {
      // The directory vanished: fall back to waking the loader so it reports ERR_BUNDLE_SOURCE.
      this.pending = true;
      this.wake?.();
    });
  }

  /**
   * No signature file beside the bundle means an unsigned bundle, not a broken source: the verifier then
   * refuses it as ERR_BUNDLE_SIGNATURE (the code an operator looks for), and the serving bundle stays.
   */
  private async signature(path: string): Promise<Buffer | undefined> {
    try {
      // Regular files only, bounded whatever stat says (bundle-file-read.ts).
      return await readRegularFileBounded(path, MAX_SIGNATURE_BYTES, 'signature');
    } catch (err) {
      if (isMissingFile(err)) return undefined;
      throw err;
    }
  }
}
