import type { BundleManifest } from '../policy/bundle';

/**
 * The bundle's own word on what a decision depends on: `metadata.verdict.cache = { key, ttlMs, denyTtlMs }`
 * (the decision cache's contract). A small validated reader kept here until the cache's reader is shared.
 */
export interface CacheDeclaration {
  key: readonly string[];
  ttlMs: number;
  denyTtlMs: number;
}

/** Input paths whose values the kernel can see (addresses, port) or that verdict binds to an address (identity). */
export const L4_KEY_PATHS: ReadonlySet<string> = new Set([
  'spiffe.id',
  'source_principal',
  'attributes.source.address.socketAddress.address',
  'attributes.destination.address.socketAddress.address',
  'attributes.destination.address.socketAddress.portValue',
]);

/** Paths that name the caller's identity; the kernel sees none of them, only the address they were seen from. */
export const IDENTITY_KEY_PATHS: ReadonlySet<string> = new Set(['spiffe.id', 'source_principal']);

const MAX_KEY_PATHS = 32;
const MAX_PATH_CHARS = 256;
const MAX_TTL_MS = 24 * 60 * 60 * 1000;

export type Eligibility =
  { eligible: true; declaration: CacheDeclaration } | { eligible: false; why: 'NO_DECLARATION' | 'INVALID_DECLARATION' | 'NOT_L4' };

/** Reads and validates the declaration; a decision is kernel-eligible only if every key path is L4-visible. */
export function kernelEligibility(manifest: BundleManifest): Eligibility {
  const raw = readPath(manifest.metadata, ['verdict', 'cache']);
  if (raw === undefined) return { eligible: false, why: 'NO_DECLARATION' };
  const declaration = parseDeclaration(raw);
  if (declaration === null) return { eligible: false, why: 'INVALID_DECLARATION' };
  if (!declaration.key.every((p) => L4_KEY_PATHS.has(p))) return { eligible: false, why: 'NOT_L4' };
  return { eligible: true, declaration };
}

function parseDeclaration(raw: unknown): CacheDeclaration | null {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return null;
  const { key, ttlMs, denyTtlMs } = raw as Record<string, unknown>;
  if (!Array.isArray(key) || key.length === 0 || key.length > MAX_KEY_PATHS) return null;
  if (!key.every((p): p is string => typeof p === 'string' && p.length > 0 && p.length <= MAX_PATH_CHARS)) return null;
  if (!isTtl(ttlMs)) return null;
  if (denyTtlMs !== undefined && !isTtl(denyTtlMs)) return null;
  return Object.freeze({ key: Object.freeze([...key]), ttlMs, denyTtlMs: denyTtlMs ?? ttlMs });
}

function isTtl(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_TTL_MS;
}

function readPath(root: unknown, path: readonly string[]): unknown {
  let node = root;
  for (const part of path) {
    if (typeof node !== 'object' || node === null || !Object.prototype.hasOwnProperty.call(node, part)) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}
