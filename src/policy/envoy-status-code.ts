/**
 * The values of Envoy's `envoy.type.v3.StatusCode` enum (envoy/type/v3/http_status.proto), without
 * `Empty` (0). Envoy reads `DeniedHttpResponse.status.code` as this enum: a number outside it is not a
 * status Envoy knows, so verdict never puts one on the wire (opa-envoy-plugin refuses such a result too:
 * envoyauth/response.go, GetResponseEnvoyHTTPStatus). Go's http.StatusText, the peer's other check, knows
 * every one of these.
 */
const ENVOY_STATUS_CODES: ReadonlySet<number> = new Set([
  100, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407,
  408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 423, 424, 426, 428, 429, 431, 500, 501, 502, 503, 504, 505, 506, 507, 508,
  510, 511,
]);

/**
 * True when `code` may be sent as the status of a denied response: in Envoy's StatusCode enum and a final
 * status (≥ 200). 100 is in the enum, but a deny answered with an interim status is no answer; verdict
 * refuses it where the peer would send it (a kept difference, docs/opa-envoy-compat.md).
 */
export function isEnvoyDenyStatus(code: unknown): code is number {
  return typeof code === 'number' && code >= 200 && ENVOY_STATUS_CODES.has(code);
}
