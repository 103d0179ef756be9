import { toVerdictError, type VerdictError } from '../errors';
import type { ActivePolicy } from '../policy/policy-store';
import type { PolicyResult } from '../policy/policy-result';
import type { SPIFFEInput } from '../request/input-document';
import { readCacheDeclaration, type CacheDeclaration } from './cache-declaration';
import { isRequestKeyable } from './cache-key';

/** How the active bundle is cached: its declaration, and whether keys come from the raw request. */
export interface CachePlan {
  readonly sha256: string;
  readonly declaration: CacheDeclaration;
  /** Every key path is readable from the CheckRequest + SPIFFE block: a hit never builds the input. */
  readonly requestKeyable: boolean;
}

/**
 * The plan for each bundle, computed once per bundle. A bundle with no declaration, a malformed one, or one
 * whose key the lint found unsafe (in enforce mode) is not cached.
 */
export class CachePlanner {
  private memo: { generation: number; plan: CachePlan | null } | null = null;
  private readonly refused = new Set<string>();
  private readonly approved = new Set<string>();

  /**
   * @param requireApproval enforce mode: a bundle is cached only after approve(sha256) (its lint passed).
   */
  constructor(
    private readonly requireApproval = false,
    private readonly onDeclarationError: (err: VerdictError, sha256: string) => void = () => {},
  ) {}

  planFor(active: ActivePolicy): CachePlan | null {
    if (this.memo?.generation === active.generation) return this.memo.plan;
    const plan = this.build(active);
    this.memo = { generation: active.generation, plan };
    return plan;
  }

  /** Stop caching a bundle (its key omits something the policy reads, or it could not be checked). */
  refuse(sha256: string): void {
    this.refused.add(sha256);
    this.approved.delete(sha256);
    this.memo = null;
  }

  /** The bundle's key was checked and covers every input path its policy reads. */
  approve(sha256: string): void {
    if (this.refused.has(sha256)) return;
    this.approved.add(sha256);
    this.memo = null;
  }

  private build(active: ActivePolicy): CachePlan | null {
    const { sha256, manifest } = active.bundle;
    if (this.refused.has(sha256) || (this.requireApproval && !this.approved.has(sha256))) return null;
    let declaration: CacheDeclaration | null;
    try {
      declaration = readCacheDeclaration(manifest);
    } catch (err) {
      this.onDeclarationError(toVerdictError(err, 'ERR_CACHE_DECLARATION'), sha256);
      return null;
    }
    if (declaration === null) return null;
    return Object.freeze({ sha256, declaration, requestKeyable: isRequestKeyable(declaration) });
  }
}

/**
 * When a result stops being valid: the bundle's TTL (allow or deny), and never later than the SVID it was
 * made for. An SVID expiry that does not parse means the result is not cached at all (deny on doubt).
 */
export function expiryFor(declaration: CacheDeclaration, nowMs: number, spiffe: SPIFFEInput | null, result: PolicyResult): number | null {
  let until = nowMs + (result.allowed ? declaration.ttlMs : declaration.denyTtlMs);
  if (spiffe) {
    const svidMs = Date.parse(spiffe.expires_at);
    if (Number.isNaN(svidMs)) return null;
    until = Math.min(until, svidMs);
  }
  return until;
}
