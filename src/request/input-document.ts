import { VerdictError } from '../errors';
import type { CheckRequest, HttpRequest } from './check-request';
import { parseBody } from './parse-body';
import { parseRequestPath } from './parse-url';
import { attributesToProtoJSON } from './protojson';

/** The `spiffe` block: present only when an SVID was verified. */
export interface SPIFFEInput {
  id: string;
  trust_domain: string;
  path: string;
  svid_type: 'x509' | 'jwt';
  expires_at: string;
}

/** The policy input: opa-envoy-plugin's shape, so its users' Rego runs unchanged. */
export interface InputDocument {
  attributes: Record<string, unknown>;
  parsed_path: string[];
  parsed_query: Record<string, string[]>;
  parsed_body: unknown;
  truncated_body: boolean;
  version: { ext_authz: 'v3'; encoding: 'protojson' };
  source_principal?: string;
  spiffe?: SPIFFEInput;
}

export interface RequestLimits {
  maxHeaders: number;
  maxParsedBodyBytes: number;
  /** policy.skipRequestBodyParse (set by issue 13b; see the marked lines below). */
  skipBodyParse?: boolean;
}

const VERSION = Object.freeze({ ext_authz: 'v3', encoding: 'protojson' } as const);

export function buildInputDocument(req: CheckRequest, limits: RequestLimits): InputDocument {
  const attrs = req.attributes;
  if (!attrs) throw new VerdictError('ERR_REQUEST_MALFORMED', 'CheckRequest has no attributes');
  const http: HttpRequest = attrs.request?.http ?? {};
  const headers = http.headers ?? {};
  checkHeaderCount(http, limits.maxHeaders);

  const url = parseRequestPath(http.path ?? '');
  if (url === null) throw new VerdictError('ERR_REQUEST_MALFORMED', 'request path has an invalid percent escape');
  const body = http.rawBody !== undefined ? Buffer.from(http.rawBody, 'base64').toString('utf8') : (http.body ?? '');
  // --- issue 13b (minimal, marked edit; the request/ rewrite should keep it): policy.skipRequestBodyParse is
  // opa-envoy-plugin's skip-request-body-parse (envoyauth/request.go RequestToInput): the body is not parsed
  // and the input has no parsed_body / truncated_body keys.
  const { parsedBody, truncatedBody } = limits.skipBodyParse
    ? { parsedBody: null, truncatedBody: false }
    : parseBody(headers, body, limits.maxParsedBodyBytes);
  // --- end issue 13b

  const input: InputDocument = {
    attributes: attributesToProtoJSON(attrs),
    parsed_path: url.parsedPath,
    parsed_query: url.parsedQuery,
    parsed_body: parsedBody,
    truncated_body: truncatedBody,
    version: VERSION,
  };
  const principal = attrs.source?.principal;
  if (principal) input.source_principal = principal;
  // --- issue 13b: see policy.skipRequestBodyParse above.
  if (limits.skipBodyParse) {
    delete (input as Partial<InputDocument>).parsed_body;
    delete (input as Partial<InputDocument>).truncated_body;
  }
  // --- end issue 13b
  return input;
}

function checkHeaderCount(http: HttpRequest, maxHeaders: number): void {
  let count = 0;
  if (http.headers) for (const _ in http.headers) count++;
  const listed = http.headerMap?.headers?.length ?? 0;
  if (Math.max(count, listed) > maxHeaders) {
    throw new VerdictError('ERR_REQUEST_TOO_MANY_HEADERS', `request has more than ${maxHeaders} headers`);
  }
}
