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
  const { parsedBody, truncatedBody } = parseBody(headers, body, limits.maxParsedBodyBytes);

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
