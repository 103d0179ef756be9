/**
 * `parsed_path` and `parsed_query` as opa-envoy-plugin computes them (Go's net/url): the path is
 * percent-decoded then split on "/" after trimming leading slashes; the query maps each key to all its
 * values, with "+" as space, skipping pairs that fail to decode or contain ";".
 */
export interface ParsedURL {
  parsedPath: string[];
  parsedQuery: Record<string, string[]>;
}

/** Returns null when the path has an invalid percent escape (Go's url.Parse fails there too). */
export function parseRequestPath(rawPath: string): ParsedURL | null {
  let end = rawPath.indexOf('#');
  const withoutFragment = end === -1 ? rawPath : rawPath.slice(0, end);
  end = withoutFragment.indexOf('?');
  const pathPart = end === -1 ? withoutFragment : withoutFragment.slice(0, end);
  const queryPart = end === -1 ? '' : withoutFragment.slice(end + 1);

  const decodedPath = percentDecode(pathPart, false);
  if (decodedPath === null) return null;
  let start = 0;
  while (start < decodedPath.length && decodedPath.charCodeAt(start) === 47 /* / */) start++;
  return { parsedPath: decodedPath.slice(start).split('/'), parsedQuery: parseQuery(queryPart) };
}

export function parseQuery(query: string): Record<string, string[]> {
  const out: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
  if (query === '') return out;
  for (const pair of query.split('&')) {
    if (pair === '' || pair.includes(';')) continue;
    const eq = pair.indexOf('=');
    const key = percentDecode(eq === -1 ? pair : pair.slice(0, eq), true);
    const value = percentDecode(eq === -1 ? '' : pair.slice(eq + 1), true);
    if (key === null || value === null) continue;
    const list = out[key];
    if (list) list.push(value);
    else out[key] = [value];
  }
  return out;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/** Percent-decoding over bytes (then UTF-8, invalid sequences replaced as Go's JSON encoder does). */
export function percentDecode(s: string, plusAsSpace: boolean): string | null {
  if (!s.includes('%') && !(plusAsSpace && s.includes('+'))) return s;
  const src = Buffer.from(s, 'utf8');
  const out = Buffer.allocUnsafe(src.length);
  let n = 0;
  for (let i = 0; i < src.length; i++) {
    const c = src[i] as number;
    if (c === 37 /* % */) {
      const hi = i + 2 < src.length ? hexValue(src[i + 1] as number) : -1;
      const lo = i + 2 < src.length ? hexValue(src[i + 2] as number) : -1;
      if (hi < 0 || lo < 0) return null;
      out[n++] = hi * 16 + lo;
      i += 2;
    } else if (plusAsSpace && c === 43 /* + */) {
      out[n++] = 32;
    } else {
      out[n++] = c;
    }
  }
  return out.toString('utf8', 0, n);
}
