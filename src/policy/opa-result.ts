import { VerdictError } from '../errors';
import { isEnvoyDenyStatus } from './envoy-status-code';
import { EMPTY_RESULT_FIELDS, type KeyValue, type PolicyResult } from './policy-result';

/**
 * Maps a Rego decision (boolean or opa-envoy-plugin's object) to a PolicyResult, field by field as the
 * peer reads it (envoyauth/response.go; which fields are read for an allow and which for a deny:
 * internal/internal.go, check). A field the peer reads that has the wrong type is an error
 * (ERR_POLICY_RESULT) and the caller denies; a field the peer does not read for this outcome is ignored,
 * as the peer ignores it (e.g. `http_status` on an allow).
 */
export function opaValueToResult(value: unknown): PolicyResult {
  // IsAllowed: a boolean, or an object with a boolean "allowed".
  if (typeof value === 'boolean') return { allowed: value, ...EMPTY_RESULT_FIELDS };
  if (!isObject(value)) throw bad(`decision must be a boolean or an object, got ${describe(value)}`);
  const allowed = value.allowed;
  if (typeof allowed !== 'boolean') throw bad('decision object needs a boolean "allowed"');
  const result: PolicyResult = {
    ...EMPTY_RESULT_FIELDS,
    allowed,
    // Read for both outcomes: headers (GetResponseEnvoyHeaderValueOptions) and dynamic_metadata.
    headers: headersField(value, 'headers'),
    reasons: reasonsField(value),
  };
  const metadata = dynamicMetadata(value.dynamic_metadata);
  if (metadata) result.dynamicMetadata = metadata;
  if (allowed) return readAllowOnly(value, result);
  return readDenyOnly(value, result);
}

/** Allow only (internal.go check, status OK branch): the fields that change the upstream request. */
function readAllowOnly(value: Record<string, unknown>, result: PolicyResult): PolicyResult {
  return {
    ...result,
    requestHeadersToRemove: stringList(value, 'request_headers_to_remove'),
    responseHeadersToAdd: headersField(value, 'response_headers_to_add'),
    queryParametersToRemove: stringList(value, 'query_parameters_to_remove'),
    queryParametersToSet: queryParams(value.query_parameters_to_set),
  };
}

/** Deny only (internal.go check, else branch): the denied response's body and status. */
function readDenyOnly(value: Record<string, unknown>, result: PolicyResult): PolicyResult {
  // GetResponseBody: a string when present.
  if (value.body !== undefined) {
    if (typeof value.body !== 'string') throw bad(`"body" must be a string, got ${describe(value.body)}`);
    result.body = value.body;
  }
  if (value.http_status !== undefined) result.httpStatus = httpStatus(value.http_status);
  return result;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

function bad(message: string): VerdictError {
  return new VerdictError('ERR_POLICY_RESULT', message);
}

/** GetDynamicMetadata: an object when present (decision_id is written over it at the edge). */
function dynamicMetadata(v: unknown): Record<string, unknown> | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v)) throw bad(`"dynamic_metadata" must be an object, got ${describe(v)}`);
  return v;
}

/** transformAnyInputToHeadersBag: an object, or an array of objects, of string or string[] values. */
function headersField(obj: Record<string, unknown>, field: string): KeyValue[] {
  const v = obj[field];
  if (v === undefined) return [];
  const maps = Array.isArray(v) ? v : [v];
  const out: KeyValue[] = [];
  for (const m of maps) {
    if (!isObject(m)) throw bad(`"${field}" must be an object or an array of objects, got ${describe(m)}`);
    for (const [key, val] of Object.entries(m)) pushStrings(out, key, val, field);
  }
  for (const [key, val] of out) checkHeader(key, val, field);
  return out;
}

/** GetRequestQueryParametersToSet: an object whose values are a string or an array of strings. */
function queryParams(v: unknown): KeyValue[] {
  if (v === undefined) return [];
  if (!isObject(v)) throw bad(`"query_parameters_to_set" must be an object, got ${describe(v)}`);
  const out: KeyValue[] = [];
  for (const [key, val] of Object.entries(v)) pushStrings(out, key, val, 'query_parameters_to_set');
  return out;
}

function pushStrings(out: KeyValue[], key: string, val: unknown, field: string): void {
  if (typeof val === 'string') {
    out.push([key, val]);
    return;
  }
  if (!Array.isArray(val)) throw bad(`"${field}.${key}" must be a string or an array of strings, got ${describe(val)}`);
  for (const item of val) {
    if (typeof item !== 'string') throw bad(`"${field}.${key}" must hold strings only, got ${describe(item)}`);
    out.push([key, item]);
  }
}

// envoy/config/core/v3/base.proto HeaderValue: key 1..16384 bytes, value ≤ 16384 bytes, neither holding
// NUL, CR or LF (HTTP_HEADER_NAME / HTTP_HEADER_VALUE, strict: false). The peer passes such headers on
// unchecked; verdict refuses them, so a policy cannot smuggle a header line (a kept difference).
const MAX_HEADER_BYTES = 16_384;
const FORBIDDEN_HEADER_CHARS = /[\0\r\n]/;

/** Refuses (ERR_POLICY_RESULT) a header Envoy's HeaderValue would not take; `field` names where it came from. */
export function checkHeader(key: string, value: string, field: string): void {
  if (key === '' || Buffer.byteLength(key) > MAX_HEADER_BYTES || FORBIDDEN_HEADER_CHARS.test(key)) {
    throw bad(`"${field}" has an invalid header name`);
  }
  if (Buffer.byteLength(value) > MAX_HEADER_BYTES || FORBIDDEN_HEADER_CHARS.test(value)) {
    throw bad(`"${field}.${key}" has an invalid header value`);
  }
}

/** getStringSliceFromDecision: an array of strings when present. */
function stringList(obj: Record<string, unknown>, field: string): string[] {
  const v = obj[field];
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw bad(`"${field}" must be an array of strings, got ${describe(v)}`);
  for (const s of v) if (typeof s !== 'string') throw bad(`"${field}" must hold strings only, got ${describe(s)}`);
  return v as string[];
}

/**
 * GetResponseHTTPStatus + GetResponseEnvoyHTTPStatus: a number, an integer (json.Number.Int64), a known
 * HTTP status and a value of Envoy's StatusCode enum. 451 and 418 are HTTP statuses Envoy's enum lacks.
 */
function httpStatus(v: unknown): number {
  if (typeof v !== 'number') throw bad(`"http_status" must be a number, got ${describe(v)}`);
  if (!Number.isInteger(v)) throw bad(`"http_status" must be an integer, got ${v}`);
  if (!isEnvoyDenyStatus(v)) throw bad(`"http_status" ${v} is not a status of Envoy's envoy.type.v3.StatusCode`);
  return v;
}

/** verdict's explanation extension: `reason` (string) or `reasons` (string[]) in the decision object. */
function reasonsField(obj: Record<string, unknown>): string[] {
  if (typeof obj.reason === 'string') return [obj.reason];
  if (Array.isArray(obj.reasons)) return obj.reasons.filter((r): r is string => typeof r === 'string');
  return [];
}
