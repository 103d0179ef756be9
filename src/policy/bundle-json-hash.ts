import { createHash } from 'node:crypto';
import { VerdictError } from '../errors';

/**
 * OPA's signature hash of a structured bundle file (data.json, .manifest): the JSON is re-encoded
 * with object keys sorted (by bytes, as Go sorts strings), no whitespace, numbers kept as written and
 * strings escaped as Go's encoding/json does with HTML escaping off — so the digest does not depend on
 * formatting. A small parser is needed because JSON.parse would round numbers (1.50 → 1.5).
 */
export function hashStructuredJSON(text: Buffer, algorithm: 'sha256' | 'sha384' | 'sha512'): string {
  const parser = new CanonicalJSON(text.toString('utf8'));
  const canonical = parser.document();
  return createHash(algorithm).update(canonical, 'utf8').digest('hex');
}

const MAX_DEPTH = 512;
// One run of plain characters, or one escape (RFC 8259 §7). Matched piecewise in a loop, never as one
// `(…)*` over the whole string: a backtracking star over a multi-megabyte string overflows the regexp stack.
// eslint-disable-next-line no-control-regex -- JSON forbids raw control characters in strings
const STRING_PIECE = /[^"\\\u0000-\u001f]+|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4}/y;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

class CanonicalJSON {
  private pos = 0;

  constructor(private readonly s: string) {}

  document(): string {
    const out = this.value(0);
    this.ws();
    if (this.pos !== this.s.length) this.fail('trailing characters');
    return out;
  }

  private value(depth: number): string {
    if (depth > MAX_DEPTH) this.fail('nesting too deep');
    this.ws();
    const c = this.s[this.pos];
    if (c === '{') return this.object(depth);
    if (c === '[') return this.array(depth);
    if (c === '"') return goString(this.string());
    for (const lit of ['true', 'false', 'null']) {
      if (this.s.startsWith(lit, this.pos)) {
        this.pos += lit.length;
        return lit;
      }
    }
    return this.number();
  }

  private object(depth: number): string {
    this.pos++;
    const members = new Map<string, string>();
    this.ws();
    if (this.s[this.pos] === '}') {
      this.pos++;
      return '{}';
    }
    for (;;) {
      this.ws();
      if (this.s[this.pos] !== '"') this.fail('expected a key');
      const key = this.string();
      this.ws();
      if (this.s[this.pos++] !== ':') this.fail('expected ":"');
      // Go's decoder keeps the last of duplicate keys.
      members.set(key, this.value(depth + 1));
      this.ws();
      const c = this.s[this.pos++];
      if (c === '}') break;
      if (c !== ',') this.fail('expected "," or "}"');
    }
    const keys = [...members.keys()].sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
    return `{${keys.map((k) => `${goString(k)}:${members.get(k) as string}`).join(',')}}`;
  }

  private array(depth: number): string {
    this.pos++;
    const items: string[] = [];
    this.ws();
    if (this.s[this.pos] === ']') {
      this.pos++;
      return '[]';
    }
    for (;;) {
      items.push(this.value(depth + 1));
      this.ws();
      const c = this.s[this.pos++];
      if (c === ']') break;
      if (c !== ',') this.fail('expected "," or "]"');
    }
    return `[${items.join(',')}]`;
  }

  private string(): string {
    const start = this.pos;
    this.pos++; // opening quote
    while (this.s[this.pos] !== '"') {
      if (this.pos >= this.s.length || this.match(STRING_PIECE) === null) this.fail('bad string');
    }
    this.pos++;
    return JSON.parse(this.s.slice(start, this.pos)) as string;
  }

  private number(): string {
    const m = this.match(NUMBER);
    if (m === null) this.fail('unexpected character');
    return m;
  }

  /** Sticky regexes match in place: no slicing, so the parse stays linear in the text size. */
  private match(re: RegExp): string | null {
    re.lastIndex = this.pos;
    const m = re.exec(this.s);
    if (!m) return null;
    this.pos += m[0].length;
    return m[0];
  }

  private ws(): void {
    while (this.pos < this.s.length && ' \t\n\r'.includes(this.s[this.pos] as string)) this.pos++;
  }

  private fail(why: string): never {
    throw new VerdictError('ERR_BUNDLE_INVALID', `structured bundle file is not valid JSON (${why} at ${this.pos})`);
  }
}

/** encoding/json's string form (SetEscapeHTML(false)): like JSON.stringify, plus U+2028/U+2029 escaped. */
function goString(s: string): string {
  return JSON.stringify(s)
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}
