import type { StagedBundle } from './bundle-staged';
import type { EngineKind } from './policy-engine';

/** `.manifest` (OPA bundle format) plus verdict's keys under `metadata.verdict`. */
export interface BundleManifest {
  revision?: string;
  roots?: string[];
  wasm?: { entrypoint: string; module: string }[];
  metadata?: Record<string, unknown>;
  [key: string]: unknown;
}

/** A bundle read and bounded, not yet trusted to run until the loader has verified it. */
export interface PolicyBundle {
  /** Name (from the manifest's metadata.verdict.name, else the source's file name). */
  name: string;
  revision: string;
  /** sha256 of the bundle file as received: what every decision carries. */
  sha256: string;
  engine: EngineKind;
  manifest: BundleManifest;
  /** Bundle-relative paths without the leading "/" → contents. */
  files: ReadonlyMap<string, Buffer>;
  compressedBytes: number;
  /** Who signed it, once the loader verified a signature (null: unsigned, accepted because no key is configured). */
  signer?: BundleSigner | null;
}

/** A verified signature: OPA's `.signatures.json` and/or a cosign signature over the whole file. */
export interface BundleSigner {
  opa: { keyId: string; algorithm: string; issuedAtSec: number | null; issuer: string | null; scope: string | null } | null;
  cosign: { form: string } | null;
}

/** A bundle file as a source delivered it, with what came beside it. */
export interface BundleArtifact {
  /**
   * The bundle file: bytes on the event loop, or staged in a bundle worker (a watched file or an HTTP body
   * goes straight there; bundle-staged.ts). A staged artifact is closed by whoever offers it (the loader).
   */
  bytes: Buffer | StagedBundle;
  /** Where it came from (path, URL, OCI reference): for logs and the default bundle name. */
  origin: string;
  /** cosign signature file delivered beside the bundle (detached base64 or a sigstore bundle). */
  cosignSignature?: Buffer | undefined;
  /** OCI manifest digest the bundle was pulled by (sha256:…). */
  ociDigest?: string | undefined;
}

export interface BundleLimits {
  maxCompressedBytes: number;
  maxUncompressedBytes: number;
  /** Tar entries of any kind: files and directories. */
  maxFiles: number;
  /** One file's size, as declared by its tar header and as streamed. */
  maxFileBytes?: number;
  /** Path segments of one entry (a/b/c is 3). */
  maxPathDepth?: number;
}

export const DEFAULT_BUNDLE_LIMITS = Object.freeze({
  maxCompressedBytes: 32 * 1024 * 1024,
  maxUncompressedBytes: 128 * 1024 * 1024,
  maxFiles: 10_000,
  maxFileBytes: 64 * 1024 * 1024,
  maxPathDepth: 32,
}) satisfies Required<BundleLimits>;

/** Deadline for each step of loading one bundle (read and verify, instantiate, start function, self-test). */
export const DEFAULT_LOAD_TIMEOUT_MS = 10_000;
