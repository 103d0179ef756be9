/** A header or query parameter as a key/value pair, in the order the policy gave them. */
export type KeyValue = readonly [key: string, value: string];

/**
 * What every engine returns: opa-envoy-plugin's result object, normalized. Cedar's determining policy
 * ids and any engine's explanation travel in `reasons`.
 */
export interface PolicyResult {
  allowed: boolean;
  /** For a deny: the HTTP status the policy asked for (else the configured deny status). */
  httpStatus?: number;
  /** For a deny: the response body. */
  body?: string;
  /** Allow: headers set on the upstream request. Deny: headers on the denied response. */
  headers: readonly KeyValue[];
  responseHeadersToAdd: readonly KeyValue[];
  requestHeadersToRemove: readonly string[];
  queryParametersToSet: readonly KeyValue[];
  queryParametersToRemove: readonly string[];
  dynamicMetadata?: Record<string, unknown>;
  /** Machine-readable explanation: rule/policy ids or a reason string from the engine. */
  reasons: readonly string[];
}

export const EMPTY_RESULT_FIELDS = Object.freeze({
  headers: [] as readonly KeyValue[],
  responseHeadersToAdd: [] as readonly KeyValue[],
  requestHeadersToRemove: [] as readonly string[],
  queryParametersToSet: [] as readonly KeyValue[],
  queryParametersToRemove: [] as readonly string[],
  reasons: [] as readonly string[],
});

const shared = new WeakSet<PolicyResult>();

/**
 * Marks a result as one object answering many decisions (an engine's memo of its answers), frozen so that
 * no reader can change what the others see. Such a result may key per-result caches, as a cached one does.
 */
export function shareResult(result: PolicyResult): PolicyResult {
  shared.add(Object.freeze(result));
  return result;
}

export function isSharedResult(result: PolicyResult): boolean {
  return shared.has(result);
}
