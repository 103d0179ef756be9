import { VerdictError } from '../errors';
import type { CheckRequest, HttpRequest } from './check-request';
import { parseRequestPath } from './go-url';
import type { GRPCBodyTypes } from './grpc-body-types';
import { HAS_EXACT_NUMBERS } from './input-json';
import { NOT_PARSED, parseBody } from './parse-body';

/** The `spiffe` block: present only when an SVID was verified. */
export interface SPIFFEInput {
  id: string;
  trust_domain: string;
  path: string;
  svid_type: 'x509' | 'jwt';
  expires_at: string;
}

/**
 * The policy input: opa-envoy-plugin's shape (envoyauth/request.go `RequestToInput`), so its users' Rego
 * runs unchanged. Serialize it with inputToJSON (input-json.ts), never JSON.stringify: it may hold
 * ExactNumbers, flagged by HAS_EXACT_NUMBERS.
 */
export interface InputDocument {
  /** The decoded CheckRequest's attributes, as check-request-decoder.ts produced them. */
  attributes: Record<string, unknown>;
  parsed_path: string[];
  parsed_query: Record<string, string[]>;
  parsed_body: unknown;
  truncated_body: boolean;
  version: { ext_authz: 'v3'; encoding: 'protojson' };
  source_principal?: string;
  spiffe?: SPIFFEInput;
  [HAS_EXACT_NUMBERS]?: true;
}

export interface RequestLimits {
  maxHeaders: number;
  maxParsedBodyBytes: number;
  /** policy.skipRequestBodyParse: the peer's skip-request-body-parse (no parsed_body / truncated_body keys). */
  skipBodyParse?: boolean;
  /** Nesting bound of the whole input document (ERR_REQUEST_TOO_DEEP). */
  maxInputDepth: number;
  /** Query parameters, form pairs and multipart parts (ERR_REQUEST_TOO_MANY_PARAMS). */
  maxQueryParams: number;
  /** policy.protoDescriptor's message types, loaded once at start-up (gRPC bodies). */
  grpcBodyTypes?: GRPCBodyTypes | undefined;
}

const VERSION = Object.freeze({ ext_authz: 'v3', encoding: 'protojson' } as const);

/**
 * Adds the peer's derived keys to a decoded CheckRequest. `exactNumbers` says the request itself holds an
 * ExactNumber (ReceivedCheckRequest.exactNumbers). An empty CheckRequest (no attributes) is refused: the
 * peer would evaluate it, but Envoy never sends one and it names nothing to authorize.
 */
export async function buildInputDocument(req: CheckRequest, limits: RequestLimits, exactNumbers = false): Promise<InputDocument> {
  const attrs = req.attributes;
  if (!attrs) throw new VerdictError('ERR_REQUEST_MALFORMED', 'CheckRequest has no attributes');
  const http: HttpRequest = attrs.request?.http ?? {};
  checkHeaderCount(http, limits.maxHeaders);

  const url = parseRequestPath(http.path ?? '', limits.maxQueryParams);
  const rawBody = http.rawBody !== undefined ? Buffer.from(http.rawBody, 'base64') : undefined;
  // policy.skipRequestBodyParse is opa-envoy-plugin's skip-request-body-parse (envoyauth/request.go
  // RequestToInput): the body is not parsed and the input has no parsed_body / truncated_body keys.
  const body = limits.skipBodyParse ? NOT_PARSED : await parseBody(http.headers ?? {}, http.body, rawBody, limits, url.parsedPath);

  const input: InputDocument = {
    attributes: attrs as Record<string, unknown>,
    parsed_path: url.parsedPath,
    parsed_query: url.parsedQuery,
    parsed_body: body.parsedBody,
    truncated_body: body.truncatedBody,
    version: VERSION,
  };
  const principal = attrs.source?.principal;
  if (principal) input.source_principal = principal;
  if (limits.skipBodyParse) {
    delete (input as Partial<InputDocument>).parsed_body;
    delete (input as Partial<InputDocument>).truncated_body;
  }
  if (exactNumbers || body.exactNumbers) input[HAS_EXACT_NUMBERS] = true;
  return input;
}

/** The decoder bounds headers while decoding; requests built another way (HTTP mode) are bounded here. */
function checkHeaderCount(http: HttpRequest, maxHeaders: number): void {
  let count = 0;
  if (http.headers) for (const _ in http.headers) count++;
  const listed = http.headerMap?.headers?.length ?? 0;
  if (Math.max(count, listed) > maxHeaders) {
    throw new VerdictError('ERR_REQUEST_TOO_MANY_HEADERS', `request has more than ${maxHeaders} headers`);
  }
}
