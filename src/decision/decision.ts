import type { ErrorCode } from '../errors';
import type { EngineKind } from '../policy/policy-engine';
import type { PolicyResult } from '../policy/policy-result';

/** Why a request was decided as it was: a policy verdict, or the error code that denied it. */
export type ReasonCode = 'ALLOWED' | 'DENIED_BY_POLICY' | ErrorCode;

export interface BundleRef {
  name: string;
  revision: string;
  sha256: string;
}

/** The outcome of one Check, independent of the protocol that asked. */
export interface Decision {
  id: string;
  allowed: boolean;
  reason: ReasonCode;
  /** HTTP status of a deny (policy's, or the configured one for the failure class). */
  httpStatus: number;
  /** Present when the policy decided (allow or deny); absent when an error denied first. */
  result?: PolicyResult;
  bundle?: BundleRef;
  engine?: EngineKind;
  /**
   * `decision.dryRun`: the policy denied, but the response lets the request through (opa-envoy-plugin's
   * `dry-run`). `allowed` and `reason` keep the real outcome, for the decision log.
   */
  dryRun?: true;
  /**
   * Set when the request's path, query or body did not parse: opa-envoy-plugin's `request_parse_error`
   * reason (Go's message), which the response carries as its status message and body.
   */
  parseError?: string;
  /** Answered from the decision cache: `result` is the cache's own object, the same for every hit on it. */
  cached?: true;
}
