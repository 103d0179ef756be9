import { VerdictError } from '../errors';
import type { BundleManifest } from '../policy/bundle';
import { verdictMetadata } from '../policy/bundle-reader';

/**
 * What a bundle declares its decision depends on: `metadata.verdict.cache` in its `.manifest`:
 * `{ "key": ["spiffe.id", "attributes.request.http.method"], "ttlMs": 5000, "denyTtlMs": 1000 }`.
 * Key paths are dotted input paths; a decision is cached only under a bundle that declares them.
 */
export interface CacheDeclaration {
  /** Dotted input paths, as declared (order kept: it is part of the key layout). */
  readonly keyPaths: readonly string[];
  /** Each path split into segments. */
  readonly keySegments: readonly (readonly string[])[];
  /** Lifetime of a cached allow. */
  readonly ttlMs: number;
  /** Lifetime of a cached deny (defaults to ttlMs). */
  readonly denyTtlMs: number;
}

const MAX_KEY_PATHS = 32;
const MAX_TTL_MS = 24 * 60 * 60 * 1000;
const SEGMENT = /^[A-Za-z0-9_\-:@]+$/;
const FORBIDDEN_SEGMENTS = new Set(['__proto__', 'prototype', 'constructor']);

/**
 * Parses and validates a manifest's cache declaration. Returns null when the bundle declares none (it is
 * then never cached); throws ERR_CACHE_DECLARATION when it declares one that is malformed. Exported for the
 * kernel fast path, which reuses the declared paths and TTLs to decide L4 eligibility.
 */
export function readCacheDeclaration(manifest: BundleManifest): CacheDeclaration | null {
  const raw = verdictMetadata(manifest).cache;
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw bad('metadata.verdict.cache must be an object');
  const decl = raw as Record<string, unknown>;
  const unknown = Object.keys(decl).filter((k) => k !== 'key' && k !== 'ttlMs' && k !== 'denyTtlMs');
  if (unknown.length > 0) throw bad(`metadata.verdict.cache has unknown field(s): ${unknown.join(', ')}`);
  const keyPaths = keyList(decl.key);
  const ttlMs = ttl(decl.ttlMs, 'ttlMs');
  const denyTtlMs = decl.denyTtlMs === undefined ? ttlMs : ttl(decl.denyTtlMs, 'denyTtlMs');
  return Object.freeze({
    keyPaths: Object.freeze(keyPaths),
    keySegments: Object.freeze(keyPaths.map((p) => Object.freeze(p.split('.')))),
    ttlMs,
    denyTtlMs,
  });
}

function keyList(v: unknown): string[] {
  if (!Array.isArray(v) || v.length === 0) throw bad('metadata.verdict.cache.key must be a non-empty array of input paths');
  if (v.length > MAX_KEY_PATHS) throw bad(`metadata.verdict.cache.key has more than ${MAX_KEY_PATHS} paths`);
  const seen = new Set<string>();
  for (const p of v) {
    if (typeof p !== 'string' || !p.split('.').every((s) => SEGMENT.test(s) && !FORBIDDEN_SEGMENTS.has(s))) {
      throw bad(`metadata.verdict.cache.key: ${JSON.stringify(p)} is not a dotted input path (e.g. "spiffe.id")`);
    }
    if (seen.has(p)) throw bad(`metadata.verdict.cache.key lists "${p}" twice`);
    seen.add(p);
  }
  return v as string[];
}

function ttl(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_TTL_MS) {
    throw bad(`metadata.verdict.cache.${field} must be an integer between 1 and ${MAX_TTL_MS} (ms)`);
  }
  return v;
}

function bad(message: string): VerdictError {
  return new VerdictError('ERR_CACHE_DECLARATION', message);
}
