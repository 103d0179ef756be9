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
}

export interface BundleLimits {
  maxCompressedBytes: number;
  maxUncompressedBytes: number;
  maxFiles: number;
}

export const DEFAULT_BUNDLE_LIMITS: BundleLimits = Object.freeze({
  maxCompressedBytes: 32 * 1024 * 1024,
  maxUncompressedBytes: 128 * 1024 * 1024,
  maxFiles: 10_000,
});
