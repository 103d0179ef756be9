import { VerdictError } from '../errors';
import { parseExactJSON } from './exact-json-parse';
import { parseQuery } from './go-url';
import type { GRPCBodyTypes } from './grpc-body-types';
import { parseGRPCBody } from './parse-grpc-body';
import { parseMultipart } from './parse-multipart';

export interface ParsedBody {
  parsedBody: unknown;
  truncatedBody: boolean;
  exactNumbers: boolean;
}

export interface BodyLimits {
  /** Bodies over this are not parsed and reported truncated (verdict's bound; the peer has none). */
  maxParsedBodyBytes: number;
  maxInputDepth: number;
  maxQueryParams: number;
  /** Fields read from a gRPC body (ERR_REQUEST_TOO_MANY_FIELDS); the CheckRequest's own bound by default. */
  maxRequestFields?: number;
  /** policy.protoDescriptor, loaded at start-up; without it gRPC bodies stay null, as in the peer. */
  grpcBodyTypes?: GRPCBodyTypes | undefined;
}

export const NOT_PARSED: ParsedBody = Object.freeze({ parsedBody: null, truncatedBody: false, exactNumbers: false });
const TRUNCATED: ParsedBody = Object.freeze({ parsedBody: null, truncatedBody: true, exactNumbers: false });

/** limits.maxRequestFields' default, for callers that build limits by hand. */
const DEFAULT_MAX_FIELDS = 50_000;

/** `parsed_body` sits one level under the input root. */
const BODY_DEPTH = 1;

/**
 * `parsed_body` / `truncated_body` as opa-envoy-plugin's envoyauth/request.go `getParsedBody` builds them.
 * Only the `headers` map is read (lowercase keys, as Envoy sends them), never `headerMap`.
 * 1. `x-envoy-auth-partial-body: true` → truncated, not parsed (Envoy cut the body; chunked bodies have no
 *    content-length to tell).
 * 2. The content type is matched by substring, in this order: application/json, application/grpc (null
 *    unless a descriptor set is configured; then parse-grpc-body.ts), application/x-www-form-urlencoded,
 *    multipart/form-data.
 * 3. The body is `body`, else `rawBody`; none → null. A `content-length` larger than the body's bytes →
 *    truncated; a content-length that is not an int64 → parse error (strconv.ParseInt's message).
 * Parse errors are ERR_REQUEST_BODY_PARSE, answered as `request_parse_error: <reason>`.
 */
export async function parseBody(
  headers: Readonly<Record<string, string>>,
  body: string | undefined,
  rawBody: Buffer | undefined,
  limits: BodyLimits,
  parsedPath: readonly string[] = [],
): Promise<ParsedBody> {
  if (headers['x-envoy-auth-partial-body'] === 'true') return TRUNCATED;
  const contentType = headers['content-type'];
  if (contentType === undefined) return NOT_PARSED;
  const kind = bodyKind(contentType);
  if (kind === null) return NOT_PARSED;
  if (kind === 'grpc') return grpcBody(rawBody, parsedPath, limits);
  const payload = body !== undefined && body !== '' ? body : rawBody !== undefined && rawBody.length > 0 ? rawBody.toString('utf8') : '';
  if (payload === '') return NOT_PARSED;
  const bytes = body !== undefined && body !== '' ? Buffer.byteLength(body, 'utf8') : (rawBody as Buffer).length;
  const declared = headers['content-length'];
  if (declared !== undefined && isTruncated(declared, bytes)) return TRUNCATED;
  if (bytes > limits.maxParsedBodyBytes) return TRUNCATED;
  switch (kind) {
    case 'json': {
      const { value, exactNumbers } = parseExactJSON(payload, BODY_DEPTH, limits.maxInputDepth);
      return { parsedBody: value, truncatedBody: false, exactNumbers };
    }
    case 'form':
      return {
        parsedBody: parseQuery(payload, limits.maxQueryParams, 'ERR_REQUEST_BODY_PARSE'),
        truncatedBody: false,
        exactNumbers: false,
      };
    case 'multipart': {
      const raw = body !== undefined && body !== '' ? Buffer.from(body, 'utf8') : (rawBody as Buffer);
      const parsed = await parseMultipart(contentType, raw, limits);
      if (parsed === null) return NOT_PARSED;
      return { parsedBody: parsed.value, truncatedBody: false, exactNumbers: parsed.exactNumbers };
    }
  }
}

/**
 * The application/grpc branch of `getParsedBody`: only `raw_body` is read (Envoy's pack_as_bytes; a string
 * `body` is ignored), none → null. Bodies over maxParsedBodyBytes are reported truncated (verdict's bound).
 */
function grpcBody(rawBody: Buffer | undefined, parsedPath: readonly string[], limits: BodyLimits): ParsedBody {
  if (limits.grpcBodyTypes === undefined || rawBody === undefined || rawBody.length === 0) return NOT_PARSED;
  if (rawBody.length > limits.maxParsedBodyBytes) return TRUNCATED;
  return parseGRPCBody(rawBody, parsedPath, limits.grpcBodyTypes, {
    depthLeft: limits.maxInputDepth - BODY_DEPTH,
    maxFields: limits.maxRequestFields ?? DEFAULT_MAX_FIELDS,
  });
}

type BodyKind = 'json' | 'grpc' | 'form' | 'multipart';

function bodyKind(contentType: string): BodyKind | null {
  if (contentType.includes('application/json')) return 'json';
  if (contentType.includes('application/grpc')) return 'grpc';
  if (contentType.includes('application/x-www-form-urlencoded')) return 'form';
  if (contentType.includes('multipart/form-data')) return 'multipart';
  return null;
}

const INT64_MAX = 9223372036854775807n;
const INT64_MIN = -9223372036854775808n;

/** envoyauth `checkIfHTTPBodyTruncated`: strconv.ParseInt(contentLength, 10, 64); -1 means unknown. */
function isTruncated(contentLength: string, bodyBytes: number): boolean {
  if (!/^[+-]?\d+$/.test(contentLength)) {
    throw new VerdictError('ERR_REQUEST_BODY_PARSE', `strconv.ParseInt: parsing ${JSON.stringify(contentLength)}: invalid syntax`);
  }
  // An int64 has at most 19 digits once leading zeros are gone: longer is out of range without converting
  // it (BigInt of a million digits takes ~130 ms; the header is as long as the CheckRequest allows).
  const sign = contentLength[0] === '-' || contentLength[0] === '+' ? 1 : 0;
  let first = sign;
  while (first < contentLength.length - 1 && contentLength.charCodeAt(first) === 48 /* 0 */) first++;
  const n = contentLength.length - first > 19 ? null : BigInt(`${contentLength.slice(0, sign)}${contentLength.slice(first)}`);
  if (n === null || n > INT64_MAX || n < INT64_MIN) {
    throw new VerdictError('ERR_REQUEST_BODY_PARSE', `strconv.ParseInt: parsing ${JSON.stringify(contentLength)}: value out of range`);
  }
  return n !== -1n && n > BigInt(bodyBytes);
}
