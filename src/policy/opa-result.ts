import { VerdictError } from '../errors';
import { EMPTY_RESULT_FIELDS, type KeyValue, type PolicyResult } from './policy-result';

/**
 * Maps a Rego decision (boolean or opa-envoy-plugin's object) to a PolicyResult. Any field of the wrong
 * type is an error (ERR_POLICY_RESULT), never ignored: the caller denies.
 */
export function opaValueToResult(value: unknown): PolicyResult {
  if (typeof value === 'boolean') return { allowed: value, ...EMPTY_RESULT_FIELDS };
  if (!isObject(value)) throw bad(`decision must be a boolean or an object, got ${describe(value)}`);
  const allowed = value.allowed;
  if (typeof allowed !== 'boolean') throw bad('decision object needs a boolean "allowed"');

  const result: PolicyResult = {
    allowed,
    headers: headersField(value, 'headers'),
    responseHeadersToAdd: headersField(value, 'response_headers_to_add'),
    requestHeadersToRemove: stringList(value, 'request_headers_to_remove'),
    queryParametersToSet: queryParams(value.query_parameters_to_set),
    queryParametersToRemove: stringList(value, 'query_parameters_to_remove'),
    reasons: reasonsField(value),
  };
  if (value.body !== undefined) {
    if (typeof value.body !== 'string') throw bad('"body" must be a string');
    result.body = value.body;
  }
  if (value.http_status !== undefined) result.httpStatus = httpStatus(value.http_status);
  if (value.dynamic_metadata !== undefined) {
    if (!isObject(value.dynamic_metadata)) throw bad('"dynamic_metadata" must be an object');
    result.dynamicMetadata = value.dynamic_metadata;
  }
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

/** Headers: an object of string or string[] values, or an array of such objects. */
function headersField(obj: Record<string, unknown>, field: string): KeyValue[] {
  const v = obj[field];
  if (v === undefined) return [];
  const maps = Array.isArray(v) ? v : [v];
  const out: KeyValue[] = [];
  for (const m of maps) {
    if (!isObject(m)) throw bad(`"${field}" must be an object or an array of objects`);
    for (const [key, val] of Object.entries(m)) pushStrings(out, key, val, field);
  }
  return out;
}

function queryParams(v: unknown): KeyValue[] {
  if (v === undefined) return [];
  if (!isObject(v)) throw bad('"query_parameters_to_set" must be an object');
  const out: KeyValue[] = [];
  for (const [key, val] of Object.entries(v)) pushStrings(out, key, val, 'query_parameters_to_set');
  return out;
}

function pushStrings(out: KeyValue[], key: string, val: unknown, field: string): void {
  if (typeof val === 'string') {
    out.push([key, val]);
    return;
  }
  if (!Array.isArray(val)) throw bad(`"${field}.${key}" must be a string or an array of strings`);
  for (const item of val) {
    if (typeof item !== 'string') throw bad(`"${field}.${key}" must hold strings only`);
    out.push([key, item]);
  }
}

function stringList(obj: Record<string, unknown>, field: string): string[] {
  const v = obj[field];
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw bad(`"${field}" must be an array of strings`);
  return v as string[];
}

function httpStatus(v: unknown): number {
  // Envoy's type.v3.StatusCode covers 100–511; verdict accepts the 200–599 range Envoy can send.
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 200 || v > 599) {
    throw bad('"http_status" must be an integer HTTP status between 200 and 599');
  }
  return v;
}

/** verdict's explanation extension: `reason` (string) or `reasons` (string[]) in the decision object. */
function reasonsField(obj: Record<string, unknown>): string[] {
  if (typeof obj.reason === 'string') return [obj.reason];
  if (Array.isArray(obj.reasons)) return obj.reasons.filter((r): r is string => typeof r === 'string');
  return [];
}
