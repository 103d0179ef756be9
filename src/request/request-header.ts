import { VerdictError } from '../errors';
import type { HttpRequest } from './check-request';

/**
 * One request header as Envoy sent it: from `headers`, else from `header_map` (Envoy's
 * `encode_raw_headers`), whose raw bytes are UTF-8. `headers` merges repeated headers into one value;
 * `header_map` lists each occurrence, so a header that appears there twice is refused
 * (ERR_REQUEST_MALFORMED): taking the first would verify one value while the upstream may read the
 * other (the class of CVE-2020-25017), where the merged `headers` value would not verify at all.
 */
export function requestHeader(http: HttpRequest | undefined, name: string): string | undefined {
  const direct = http?.headers?.[name];
  if (direct !== undefined) return direct;
  const entries = http?.headerMap?.headers;
  if (!entries) return undefined;
  let entry: (typeof entries)[number] | undefined;
  for (const h of entries) {
    if (h.key !== name) continue;
    if (entry) throw new VerdictError('ERR_REQUEST_MALFORMED', `header_map holds ${name} more than once`);
    entry = h;
  }
  if (!entry) return undefined;
  return entry.value ?? (entry.rawValue !== undefined ? Buffer.from(entry.rawValue, 'base64').toString('utf8') : undefined);
}
