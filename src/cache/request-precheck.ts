import { VerdictError } from '../errors';
import type { CheckRequest } from '../request/check-request';
import type { RequestLimits } from '../request/input-document';
import { checkRequestPath } from '../request/go-url';

/**
 * A cache hit skips building the input document, so it must not skip the refusals that building would
 * have made: no attributes, too many headers, a path or query that does not parse, too many parameters. These are re-checked here cheaply.
 * A body the input builder would parse (JSON or form) can be refused only by parsing it, so such a request
 * is not answered from the cache ('bypass'): deny on doubt beats a cached allow for a malformed body.
 */
/** Content types whose body the input builder parses, and so may refuse (request/parse-body.ts). */
const PARSED_BODY_TYPES = ['application/json', 'application/x-www-form-urlencoded', 'multipart/form-data'];

export function precheckForCache(req: CheckRequest, limits: RequestLimits): 'ok' | 'bypass' {
  const attrs = req.attributes;
  if (!attrs) throw new VerdictError('ERR_REQUEST_MALFORMED', 'CheckRequest has no attributes');
  const http = attrs.request?.http;
  if (!http) return 'ok';
  let count = 0;
  if (http.headers) for (const _ in http.headers) count++;
  if (Math.max(count, http.headerMap?.headers?.length ?? 0) > limits.maxHeaders) {
    throw new VerdictError('ERR_REQUEST_TOO_MANY_HEADERS', `request has more than ${limits.maxHeaders} headers`);
  }
  // Throws the same coded refusals (ERR_REQUEST_PARSE, ERR_REQUEST_TOO_MANY_PARAMS) building would.
  if (http.path !== undefined) checkRequestPath(http.path, limits.maxQueryParams);
  if ((http.body !== undefined && http.body !== '') || (http.rawBody !== undefined && http.rawBody !== '')) {
    const type = http.headers?.['content-type'];
    if (type !== undefined && PARSED_BODY_TYPES.some((t) => type.includes(t))) return 'bypass';
  }
  return 'ok';
}
