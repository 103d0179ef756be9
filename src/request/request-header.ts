import type { HttpRequest } from './check-request';

/**
 * One request header as Envoy sent it: from `headers`, else from `header_map` (Envoy's
 * `encode_raw_headers`), whose raw bytes are UTF-8.
 */
export function requestHeader(http: HttpRequest | undefined, name: string): string | undefined {
  const direct = http?.headers?.[name];
  if (direct !== undefined) return direct;
  const entry = http?.headerMap?.headers?.find((h) => h.key === name);
  if (!entry) return undefined;
  return entry.value ?? (entry.rawValue !== undefined ? Buffer.from(entry.rawValue, 'base64').toString('utf8') : undefined);
}
