import type { CachePlanner } from '../cache/cache-plan';
import type { DecisionCache } from '../cache/decision-cache';
import type { PolicyStore } from '../policy/policy-store';
import type { CheckRequest } from '../request/check-request';
import type { SPIFFEInput } from '../request/input-document';

/** What decides one tenant's requests: its own store (bundle, atomic swaps) and its own cache namespace. */
export interface RoutedTenant {
  readonly name: string;
  readonly policy: PolicyStore;
  /** Null when caching is off. */
  readonly cache: { store: DecisionCache; planner: CachePlanner } | null;
}

/** The pipeline's tenant step: the request's tenant, or a throw of ERR_TENANT_UNKNOWN (deny). */
export interface TenantRouter {
  route(message: CheckRequest, spiffe: SPIFFEInput | null): RoutedTenant;
}
