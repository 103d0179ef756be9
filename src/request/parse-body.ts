import { VerdictError } from '../errors';
import { parseQuery } from './parse-url';

export interface ParsedBody {
  parsedBody: unknown;
  truncatedBody: boolean;
}

const NONE: ParsedBody = { parsedBody: null, truncatedBody: false };

/**
 * `parsed_body` / `truncated_body` as opa-envoy-plugin defines them, plus form bodies: a JSON body is
 * parsed when the content type says so and Envoy sent all of it (content-length not larger than the body).
 * Bodies over maxBytes are not parsed (reported truncated) so a large body costs no parse.
 */
export function parseBody(headers: Readonly<Record<string, string>>, body: string, maxBytes: number): ParsedBody {
  const contentType = headers['content-type'];
  if (contentType === undefined || body === '') return NONE;
  const isJSON = contentType.includes('application/json');
  const isForm = !isJSON && contentType.includes('application/x-www-form-urlencoded');
  if (!isJSON && !isForm) return NONE;

  const declared = headers['content-length'];
  if (declared !== undefined) {
    if (!/^-?\d+$/.test(declared)) throw new VerdictError('ERR_REQUEST_BODY_PARSE', 'content-length is not an integer');
    const length = Number(declared);
    if (length !== -1 && length > Buffer.byteLength(body, 'utf8')) return { parsedBody: null, truncatedBody: true };
  }
  if (body.length > maxBytes) return { parsedBody: null, truncatedBody: true };
  if (isForm) return { parsedBody: parseQuery(body), truncatedBody: false };
  try {
    return { parsedBody: JSON.parse(body) as unknown, truncatedBody: false };
  } catch {
    throw new VerdictError('ERR_REQUEST_BODY_PARSE', 'body declared as JSON is not valid JSON');
  }
}
