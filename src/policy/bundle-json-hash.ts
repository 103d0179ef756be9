import { createHash } from 'node:crypto';
import { VerdictError } from '../errors';

/**
 * OPA's signature hash of a structured bundle file (data.json, .manifest): the JSON is re-encoded
 * with object keys sorted (by bytes, as Go sorts strings), no whitespace, numbers kept as written and
 * strings escaped as Go's encoding/json does with HTML escaping off — so the digest does not depend on
 * formatting. A small parser is needed because JSON.parse would round numbers (1.50 → 1.5).
 */
export function hashStructuredJSON(text: Buffer, algorithm: 'sha256' | 'sha384' | 'sha512'): string {
  let canonical: string;
  try {
    canonical = canonicalJSONText(text.toString('utf8'));
  } catch (err) {
    throw new VerdictError('ERR_BUNDLE_INVALID', (err as Error).message);
  }
  return createHash(algorithm).update(canonical, 'utf8').digest('hex');
}

/**
 * The canonical text itself. Self-contained on purpose — no reference to anything outside its body — so
 * its source can also run in the bundle worker (bundle-worker.ts) as the very same code. Throws a
 * plain Error on malformed input (the callers turn it into ERR_BUNDLE_INVALID).
 */
export function canonicalJSONText(s: string): string {
  const MAX_DEPTH = 512;
  // One run of plain characters, or one escape (RFC 8259 §7), matched piece by piece: a backtracking
  // `(…)*` over a multi-megabyte string would overflow the regexp stack.
  // eslint-disable-next-line no-control-regex -- JSON forbids raw control characters in strings
  const STRING_PIECE = /[^"\\\u0000-\u001f]+|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4}/y;
  const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  let pos = 0;
  const fail = (why: string): never => {
    throw new Error(`structured bundle file is not valid JSON (${why} at ${pos})`);
  };
  /** Sticky regexes match in place: no slicing, so the parse stays linear in the text size. */
  const match = (re: RegExp): string | null => {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) return null;
    pos += m[0].length;
    return m[0];
  };
  const ws = (): void => {
    while (pos < s.length && ' \t\n\r'.includes(s[pos] as string)) pos++;
  };
  /** encoding/json's string form (SetEscapeHTML(false)): like JSON.stringify, plus U+2028/U+2029 escaped. */
  const goString = (v: string): string =>
    JSON.stringify(v)
      .replace(/\u2028/g, '\\u2028')
      .replace(/\u2029/g, '\\u2029');
  // Go sorts keys by UTF-8 bytes. UTF-16 code-unit order agrees with it below U+D800 (no surrogates, no
  // U+E000–U+FFFF), the overwhelmingly common case, which then needs no byte conversion.
  const byUTF8 = (a: string, b: string): number => {
    if (/[\ud800-\uffff]/.test(a) || /[\ud800-\uffff]/.test(b)) return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
    return a < b ? -1 : a > b ? 1 : 0;
  };
  const string = (): string => {
    const start = pos;
    pos++; // opening quote
    while (s[pos] !== '"') {
      if (pos >= s.length || match(STRING_PIECE) === null) fail('bad string');
    }
    pos++;
    return JSON.parse(s.slice(start, pos)) as string;
  };
  const value = (depth: number): string => {
    if (depth > MAX_DEPTH) fail('nesting too deep');
    ws();
    const c = s[pos];
    if (c === '{') return object(depth);
    if (c === '[') return array(depth);
    if (c === '"') return goString(string());
    for (const lit of ['true', 'false', 'null']) {
      if (s.startsWith(lit, pos)) {
        pos += lit.length;
        return lit;
      }
    }
    const n = match(NUMBER);
    return n === null ? fail('unexpected character') : n;
  };
  const object = (depth: number): string => {
    pos++;
    const members = new Map<string, string>();
    ws();
    if (s[pos] === '}') {
      pos++;
      return '{}';
    }
    for (;;) {
      ws();
      if (s[pos] !== '"') fail('expected a key');
      const key = string();
      ws();
      if (s[pos++] !== ':') fail('expected ":"');
      // Go's decoder keeps the last of duplicate keys.
      members.set(key, value(depth + 1));
      ws();
      const c = s[pos++];
      if (c === '}') break;
      if (c !== ',') fail('expected "," or "}"');
    }
    const keys = [...members.keys()].sort(byUTF8);
    return `{${keys.map((k) => `${goString(k)}:${members.get(k) as string}`).join(',')}}`;
  };
  const array = (depth: number): string => {
    pos++;
    const items: string[] = [];
    ws();
    if (s[pos] === ']') {
      pos++;
      return '[]';
    }
    for (;;) {
      items.push(value(depth + 1));
      ws();
      const c = s[pos++];
      if (c === ']') break;
      if (c !== ',') fail('expected "," or "]"');
    }
    return `[${items.join(',')}]`;
  };
  const out = value(0);
  ws();
  if (pos !== s.length) fail('trailing characters');
  return out;
}
