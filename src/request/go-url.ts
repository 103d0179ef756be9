import { VerdictError } from '../errors';

/**
 * `parsed_path` and `parsed_query` as opa-envoy-plugin computes them (envoyauth/request.go
 * `getParsedPathAndQuery`): the path is cut at the first "?", percent-decoded with Go's url.PathUnescape
 * ("+" stays, "%2F" becomes "/" before splitting), leading slashes trimmed and split on "/"; the query goes
 * through url.ParseQuery. Go's errors become ERR_REQUEST_PARSE with Go's message, which the server turns
 * into the peer's `request_parse_error: <message>` response.
 */
export interface ParsedURL {
  parsedPath: string[];
  parsedQuery: Record<string, string[]>;
}

export function parseRequestPath(rawPath: string, maxParams: number): ParsedURL {
  const q = rawPath.indexOf('?');
  const pathPart = q === -1 ? rawPath : rawPath.slice(0, q);
  const queryPart = q === -1 ? '' : rawPath.slice(q + 1);
  const decodedPath = unescape(pathPart, false, 'ERR_REQUEST_PARSE');
  let start = 0;
  while (start < decodedPath.length && decodedPath.charCodeAt(start) === 47 /* / */) start++;
  return { parsedPath: decodedPath.slice(start).split('/'), parsedQuery: parseQuery(queryPart, maxParams, 'ERR_REQUEST_PARSE') };
}

/**
 * Throws exactly what parseRequestPath would, without building the parsed form (a cache hit's precheck):
 * without "%" or ";" nothing in Go's path and query parsing can fail but the parameter count.
 */
export function checkRequestPath(rawPath: string, maxParams: number): void {
  if (rawPath.includes('%') || rawPath.includes(';')) {
    parseRequestPath(rawPath, maxParams);
    return;
  }
  const q = rawPath.indexOf('?');
  if (q !== -1 && q + 1 < rawPath.length) checkParamCount(rawPath.slice(q + 1), maxParams);
}

type ParseCode = 'ERR_REQUEST_PARSE' | 'ERR_REQUEST_BODY_PARSE';

/**
 * Go's url.ParseQuery: pairs split on "&", empty pairs skipped, a pair holding ";" is an error ("invalid
 * semicolon separator in query", the last such wins), a bad escape is an error (the first wins), and the
 * pairs that do parse are still collected — but any error fails the whole request as the peer does.
 * More than `maxParams` pairs is refused before any decoding (ERR_REQUEST_TOO_MANY_PARAMS).
 */
export function parseQuery(query: string, maxParams: number, code: ParseCode): Record<string, string[]> {
  const out = Object.create(null) as Record<string, string[]>;
  if (query === '') return out;
  checkParamCount(query, maxParams);
  let error: string | undefined;
  let semicolon = false;
  for (const pair of query.split('&')) {
    if (pair.includes(';')) {
      semicolon = true;
      continue;
    }
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const key = tryUnescape(eq === -1 ? pair : pair.slice(0, eq));
    const value = typeof key === 'string' ? tryUnescape(eq === -1 ? '' : pair.slice(eq + 1)) : key;
    if (typeof key !== 'string' || typeof value !== 'string') {
      error ??= (typeof key !== 'string' ? key : (value as Error)).message;
      continue;
    }
    const list = out[key];
    if (list) list.push(value);
    else out[key] = [value];
  }
  if (semicolon) throw new VerdictError(code, 'invalid semicolon separator in query');
  if (error !== undefined) throw new VerdictError(code, error);
  return out;
}

/** Counts "&" with an early exit, so 100,000 parameters cost one scan and no allocation. */
function checkParamCount(query: string, maxParams: number): void {
  let pairs = 1;
  for (let i = query.indexOf('&'); i !== -1; i = query.indexOf('&', i + 1)) {
    if (++pairs > maxParams) throw new VerdictError('ERR_REQUEST_TOO_MANY_PARAMS', `more than ${maxParams} query or form parameters`);
  }
}

/** QueryUnescape, returning the error instead of throwing (ParseQuery goes on after a bad pair). */
function tryUnescape(s: string): string | Error {
  try {
    return unescape(s, true, 'ERR_REQUEST_PARSE');
  } catch (err) {
    return err as Error;
  }
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/**
 * Go's url.unescape over bytes: "%" must be followed by two hex digits, else `invalid URL escape "%zz"`
 * (the escape cut to three bytes, as Go quotes it); with plusAsSpace (QueryUnescape) "+" is a space.
 * The bytes are read back as UTF-8; invalid sequences become U+FFFD (Go would keep the raw bytes).
 */
export function unescape(s: string, plusAsSpace: boolean, code: ParseCode): string {
  if (!s.includes('%') && !(plusAsSpace && s.includes('+'))) return s;
  const src = Buffer.from(s, 'utf8');
  const out = Buffer.allocUnsafe(src.length);
  let n = 0;
  for (let i = 0; i < src.length; i++) {
    const c = src[i] as number;
    if (c === 37 /* % */) {
      const hi = i + 2 < src.length ? hexValue(src[i + 1] as number) : -1;
      const lo = i + 2 < src.length ? hexValue(src[i + 2] as number) : -1;
      if (hi < 0 || lo < 0) throw new VerdictError(code, `invalid URL escape ${goQuote(src.subarray(i, i + 3).toString('utf8'))}`);
      out[n++] = hi * 16 + lo;
      i += 2;
    } else if (plusAsSpace && c === 43 /* + */) out[n++] = 32;
    else out[n++] = c;
  }
  return out.toString('utf8', 0, n);
}

/** strconv.Quote for the short ASCII strings of Go's URL errors. */
function goQuote(s: string): string {
  return JSON.stringify(s);
}
