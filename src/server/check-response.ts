import type { Decision } from '../decision/decision';
import { isEnvoyDenyStatus } from '../policy/envoy-status-code';
import type { KeyValue } from '../policy/policy-result';
import { jsonToStruct } from '../request/protojson';

/** google.rpc.Code values used on the wire. */
const RPC_OK = 0;
const RPC_PERMISSION_DENIED = 7;

export interface ResponseOptions {
  /** Header carrying the reason code on a deny; '' disables. */
  reasonHeader: string;
  /** false: no reason header and no status message on a deny (the peer's exact deny shape). */
  exposeReason: boolean;
}

/** Last-resort status when a deny carries one Envoy's StatusCode enum lacks (validation makes it unreachable). */
const WIRE_FALLBACK_STATUS = 500;

/**
 * The one place a Decision becomes an envoy.service.auth.v3.CheckResponse (proto-loader object form).
 * Allow → OkHttpResponse; deny (policy or error) → DeniedHttpResponse. decision_id always travels in
 * dynamic_metadata, as opa-envoy-plugin does.
 */
export function decisionToCheckResponse(decision: Decision, options: ResponseOptions): Record<string, unknown> {
  const r = decision.result;
  // internal.go check: decision_id is written over any policy value of the same key.
  const metadata = { ...(r?.dynamicMetadata ?? {}), decision_id: decision.id };
  // Dry run (internal.go check): a policy deny goes out as a bare allow; the decision log keeps the deny.
  if (decision.dryRun) return { status: { code: RPC_OK }, okResponse: {}, dynamicMetadata: jsonToStruct(metadata) };
  if (decision.allowed && r) {
    return {
      status: { code: RPC_OK },
      okResponse: {
        headers: setHeaderOptions(r.headers),
        headersToRemove: r.requestHeadersToRemove,
        responseHeadersToAdd: appendHeaderOptions(r.responseHeadersToAdd),
        queryParametersToSet: r.queryParametersToSet.map(([key, value]) => ({ key, value })),
        queryParametersToRemove: r.queryParametersToRemove,
      },
      dynamicMetadata: jsonToStruct(metadata),
    };
  }
  const headers = appendHeaderOptions(r?.headers ?? []);
  if (options.exposeReason && options.reasonHeader !== '')
    headers.push({ header: { key: options.reasonHeader, value: decision.reason }, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' });
  // opa-envoy-plugin internal/internal.go `check`: a RequestToInput error is answered with this text as
  // both the status message and the denied body (internal/errors.go `Error`: "<code>: <error>").
  const parseError = decision.parseError !== undefined ? `request_parse_error: ${decision.parseError}` : undefined;
  const status = isEnvoyDenyStatus(decision.httpStatus) ? decision.httpStatus : WIRE_FALLBACK_STATUS;
  const message = parseError ?? (options.exposeReason ? decision.reason : undefined);
  return {
    status: message !== undefined ? { code: RPC_PERMISSION_DENIED, message } : { code: RPC_PERMISSION_DENIED },
    deniedResponse: { status: { code: status }, headers, body: parseError ?? r?.body ?? '' },
    dynamicMetadata: jsonToStruct(metadata),
  };
}

/**
 * Upstream request headers: the first value of a key replaces the client's, later values append.
 * Envoy's ext_authz reads the legacy `append` flag for OkHttpResponse.headers (it ignores append_action
 * there: every value would overwrite and only the last would arrive), so that flag is what verdict sets.
 */
function setHeaderOptions(pairs: readonly KeyValue[]): Record<string, unknown>[] {
  const seen = new Set<string>();
  return pairs.map(([key, value]) => {
    const lower = key.toLowerCase();
    const append = seen.has(lower);
    seen.add(lower);
    return { header: { key, value }, append: { value: append } };
  });
}

function appendHeaderOptions(pairs: readonly KeyValue[]): Record<string, unknown>[] {
  return pairs.map(([key, value]) => ({ header: { key, value }, appendAction: 'APPEND_IF_EXISTS_OR_ADD' }));
}
