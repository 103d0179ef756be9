import { createHash } from 'node:crypto';
import { VerdictError } from '../errors';
import {
  abortableDelay,
  fetchFailureReason,
  IDENTITY_ENCODING,
  jitteredDelayMs,
  readBodyBounded,
  type BundleSource,
  type StagedArtifact,
  type PollingOptions,
} from './bundle-source';
import { StagedBundle, stagingFor, type StagingOptions } from './bundle-staged';

/** Media types of an OPA bundle pushed to an OCI registry (OPA docs, "OCI registry" bundle downloads). */
export const OCI_MEDIA_TYPES = Object.freeze({
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  bundleLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  /** verdict's addition: a sigstore bundle (cosign sign-blob --new-bundle-format) over the bundle layer. */
  sigstoreBundle: 'application/vnd.dev.sigstore.bundle.v0.3+json',
});

export interface OCISourceOptions extends PollingOptions {
  /** Base URL of the registry (http://127.0.0.1:5000). */
  registry: string;
  repository: string;
  /** Tag, or sha256:… manifest digest. */
  reference: string;
  /** Pinned manifest digest; null to accept what the tag names. */
  digest: string | null;
  /** The bundle worker the bundle layer is streamed into (bundle-staged.ts); default: sized for the default limits. */
  staging?: StagingOptions;
}

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const DIGEST = /^sha256:[0-9a-f]{64}$/;

/**
 * Pulls a bundle from an OCI registry (OCI distribution spec v1.1: GET manifests, GET blobs). The manifest
 * is hashed here and compared with the reference when that is a digest and with the pin when one is
 * configured; every blob is checked against its descriptor's digest and size. The bundle layer is downloaded
 * by a bundle worker and checked there (its bytes never reach the event loop unless the bundle is
 * accepted); the small signature layer is read and checked here. Polling re-reads only the
 * manifest digest (HEAD) and pulls when it moved.
 */
export class OCIBundleSource implements BundleSource {
  readonly description: string;
  private lastDigest: string | null = null;
  private failures = 0;

  constructor(private readonly options: OCISourceOptions) {
    this.description = `oci ${new URL(options.registry).host}/${options.repository}${options.reference.startsWith('sha256:') ? '@' : ':'}${options.reference}`;
  }

  async fetch(): Promise<StagedArtifact | null> {
    try {
      const artifact = await this.pull();
      this.failures = 0;
      return artifact;
    } catch (err) {
      this.failures++;
      throw err;
    }
  }

  waitForChange(signal: AbortSignal, failed: boolean): Promise<void> {
    const base = jitteredDelayMs(this.options.minDelayMs, this.options.maxDelayMs, this.options.random);
    return abortableDelay(base * (failed ? Math.min(8, 2 ** Math.max(0, this.failures - 1)) : 1), signal);
  }

  close(): void {}

  private async pull(): Promise<StagedArtifact | null> {
    const head = await this.request('HEAD', `manifests/${this.options.reference}`, OCI_MEDIA_TYPES.manifest);
    const advertised = head.headers.get('docker-content-digest');
    if (advertised !== null && advertised === this.lastDigest) return null;

    const res = await this.request('GET', `manifests/${this.options.reference}`, OCI_MEDIA_TYPES.manifest);
    const raw = await readBodyBounded(res, MAX_MANIFEST_BYTES, 'OCI manifest');
    const digest = `sha256:${createHash('sha256').update(raw).digest('hex')}`;
    this.checkManifestDigest(digest);
    if (digest === this.lastDigest) return null;
    const manifest = parseManifest(raw);
    const layer = onlyLayer(manifest.layers, OCI_MEDIA_TYPES.bundleLayer, digest);
    if (layer === undefined) throw sourceError(`OCI manifest ${digest} has no ${OCI_MEDIA_TYPES.bundleLayer} layer`);
    const sigLayer = onlyLayer(manifest.layers, OCI_MEDIA_TYPES.sigstoreBundle, digest);
    // The signature first: a failure there leaves no staged layer behind.
    const cosignSignature = sigLayer === undefined ? undefined : await this.smallBlob(sigLayer, 1024 * 1024);
    const bytes = await this.stagedBlob(layer, this.options.maxBytes);
    this.lastDigest = digest;
    return { bytes, origin: `${this.description}@${digest}`, cosignSignature, ociDigest: digest };
  }

  private checkManifestDigest(digest: string): void {
    const ref = this.options.reference;
    if (ref.startsWith('sha256:') && digest !== ref) {
      throw new VerdictError('ERR_BUNDLE_HASH_MISMATCH', `registry served manifest ${digest} for digest ${ref}`);
    }
    if (this.options.digest !== null && digest !== this.options.digest) {
      throw new VerdictError('ERR_BUNDLE_HASH_MISMATCH', `OCI manifest digest ${digest} differs from the pinned ${this.options.digest}`);
    }
  }

  /** A blob of at most `maxBytes`, read on the event loop (a signature: small by its bound). */
  private async smallBlob(d: Descriptor, maxBytes: number): Promise<Buffer> {
    checkLayerSize(d, maxBytes);
    const res = await this.request('GET', `blobs/${d.digest}`, d.mediaType);
    const bytes = await readBodyBounded(res, d.size, `OCI layer ${d.digest}`);
    const actual = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (actual !== d.digest || bytes.length !== d.size) {
      throw new VerdictError(
        'ERR_BUNDLE_HASH_MISMATCH',
        `OCI layer content ${actual} (${bytes.length} bytes) does not match its descriptor ${d.digest}`,
      );
    }
    return bytes;
  }

  /**
   * A blob downloaded by a bundle worker itself (bundle-staged.ts): bounded by its descriptor's size while it
   * streams there, and its sha256 and size compared with the descriptor there (ERR_BUNDLE_HASH_MISMATCH).
   */
  private async stagedBlob(d: Descriptor, maxBytes: number): Promise<StagedBundle> {
    checkLayerSize(d, maxBytes);
    const got = await StagedBundle.fromURL(
      {
        url: this.url(`blobs/${d.digest}`),
        headers: this.headers(d.mediaType),
        redirect: 'follow',
        timeoutMs: this.options.timeoutMs,
        what: `OCI layer ${d.digest}`,
      },
      d.size,
      this.options.staging ?? stagingFor(),
      { sha256: d.digest.slice('sha256:'.length), size: d.size },
    );
    if (got.staged === null) throw sourceError(`registry answered HTTP ${got.status} for GET blobs/${d.digest}`);
    return got.staged;
  }

  private url(path: string): string {
    return `${this.options.registry.replace(/\/$/, '')}/v2/${this.options.repository}/${path}`;
  }

  private headers(accept: string): Record<string, string> {
    const headers: Record<string, string> = { accept, ...IDENTITY_ENCODING };
    if (this.options.authorization !== null) headers.authorization = this.options.authorization;
    return headers;
  }

  private async request(method: 'GET' | 'HEAD', path: string, accept: string): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(this.url(path), {
        method,
        headers: this.headers(accept),
        redirect: 'follow',
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (err) {
      throw sourceError(`registry ${this.description} unreachable (${fetchFailureReason(err)})`);
    }
    if (res.status !== 200) {
      await res.body?.cancel();
      throw sourceError(`registry answered HTTP ${res.status} for ${method} ${path}`);
    }
    return res;
  }
}

function parseManifest(raw: Buffer): { layers: Descriptor[] } {
  let m: { schemaVersion?: unknown; mediaType?: unknown; layers?: unknown };
  try {
    m = JSON.parse(raw.toString('utf8')) as typeof m;
  } catch {
    throw new VerdictError('ERR_BUNDLE_INVALID', 'OCI manifest is not JSON');
  }
  if (m.schemaVersion !== 2 || (m.mediaType !== undefined && m.mediaType !== OCI_MEDIA_TYPES.manifest) || !Array.isArray(m.layers)) {
    throw new VerdictError('ERR_BUNDLE_INVALID', 'not an OCI image manifest (schemaVersion 2 with layers)');
  }
  return { layers: m.layers.map(descriptor) };
}

function descriptor(d: unknown): Descriptor {
  const x = d as Partial<Descriptor>;
  if (
    typeof x?.mediaType !== 'string' ||
    typeof x.digest !== 'string' ||
    !DIGEST.test(x.digest) ||
    !Number.isSafeInteger(x.size) ||
    (x.size as number) < 0
  ) {
    throw new VerdictError('ERR_BUNDLE_INVALID', 'OCI manifest has a malformed layer descriptor');
  }
  return x as Descriptor;
}

/**
 * The layer of `mediaType`, if any. Two of one kind are refused rather than one of them picked: which bundle
 * (or which signature) the manifest means would be a guess.
 */
function onlyLayer(layers: Descriptor[], mediaType: string, manifest: string): Descriptor | undefined {
  const found = layers.filter((l) => l.mediaType === mediaType);
  if (found.length > 1)
    throw new VerdictError('ERR_BUNDLE_INVALID', `OCI manifest ${manifest} has ${found.length} ${mediaType} layers (one expected)`);
  return found[0];
}

/** A layer larger than allowed by its descriptor is refused before a byte of it is fetched. */
function checkLayerSize(d: Descriptor, maxBytes: number): void {
  if (d.size > maxBytes) throw new VerdictError('ERR_BUNDLE_TOO_LARGE', `OCI layer ${d.digest} is ${d.size} bytes (max ${maxBytes})`);
}

function sourceError(message: string): VerdictError {
  return new VerdictError('ERR_BUNDLE_SOURCE', message);
}
