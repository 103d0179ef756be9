import { VerdictError } from '../errors';
import { numberFromLexeme } from './exact-number';

export interface ExactJSONResult {
  value: unknown;
  /** True when some number is held as an ExactNumber (its text differs from the double's). */
  exactNumbers: boolean;
}

/** limits.maxInputDepth's default (the schema's), for an input read outside a running verdict (`verdict eval`). */
export const DEFAULT_MAX_INPUT_DEPTH = 64;

/**
 * JSON text → value, as opa-envoy-plugin's `util.UnmarshalJSON` (Go encoding/json with UseNumber, then a
 * check for trailing data): numbers keep their text when a double would change it (ExactNumber), a
 * repeated key keeps its last value, invalid UTF-8 inside strings has already become U+FFFD, and anything
 * after the top-level value but whitespace is an error. Objects have no prototype, so a `__proto__` key
 * is data. Nesting is bounded by `maxDepth` (containers counted from `baseDepth`) → ERR_REQUEST_TOO_DEEP.
 * Errors are ERR_REQUEST_BODY_PARSE with Go's wording where it is simple to match.
 */
export function parseExactJSON(text: string, baseDepth: number, maxDepth: number): ExactJSONResult {
  const p = new Parser(text, baseDepth, maxDepth);
  p.ws();
  if (p.pos >= text.length) throw parseError('EOF');
  const value = p.value(baseDepth);
  p.ws();
  if (p.pos < text.length) throw parseError(`invalid character ${quoteChar(text[p.pos] as string)} after top-level value`);
  return { value, exactNumbers: p.exactNumbers };
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

class Parser {
  pos = 0;
  exactNumbers = false;

  constructor(
    private readonly s: string,
    private readonly baseDepth: number,
    private readonly maxDepth: number,
  ) {}

  ws(): void {
    const { s } = this;
    while (this.pos < s.length) {
      const c = s.charCodeAt(this.pos);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return;
      this.pos++;
    }
  }

  value(depth: number): unknown {
    const c = this.s[this.pos];
    switch (c) {
      case '{':
        return this.object(depth + 1);
      case '[':
        return this.array(depth + 1);
      case '"':
        return this.string();
      case 't':
        return this.literal('true', true);
      case 'f':
        return this.literal('false', false);
      case 'n':
        return this.literal('null', null);
      case undefined:
        throw parseError('unexpected EOF');
      default:
        if (c === '-' || (c >= '0' && c <= '9')) return this.number();
        throw parseError(`invalid character ${quoteChar(c)} looking for beginning of value`);
    }
  }

  private enter(depth: number): void {
    if (depth > this.maxDepth)
      throw new VerdictError('ERR_REQUEST_TOO_DEEP', `JSON nests deeper than the input bound of ${this.maxDepth} levels`);
  }

  private object(depth: number): Record<string, unknown> {
    this.enter(depth);
    const out = Object.create(null) as Record<string, unknown>;
    this.pos++;
    this.ws();
    if (this.s[this.pos] === '}') {
      this.pos++;
      return out;
    }
    for (;;) {
      if (this.s[this.pos] !== '"') throw this.unexpected('looking for beginning of object key string');
      const key = this.string();
      this.ws();
      if (this.s[this.pos] !== ':') throw this.unexpected('after object key');
      this.pos++;
      this.ws();
      out[key] = this.value(depth);
      this.ws();
      const c = this.s[this.pos++];
      if (c === '}') return out;
      if (c !== ',') {
        this.pos--;
        throw this.unexpected('after object key:value pair');
      }
      this.ws();
    }
  }

  private array(depth: number): unknown[] {
    this.enter(depth);
    const out: unknown[] = [];
    this.pos++;
    this.ws();
    if (this.s[this.pos] === ']') {
      this.pos++;
      return out;
    }
    for (;;) {
      this.ws();
      out.push(this.value(depth));
      this.ws();
      const c = this.s[this.pos++];
      if (c === ']') return out;
      if (c !== ',') {
        this.pos--;
        throw this.unexpected('after array element');
      }
    }
  }

  private string(): string {
    const { s } = this;
    const start = ++this.pos;
    // Fast path: no escapes.
    for (let i = start; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c === 0x22) {
        this.pos = i + 1;
        return s.slice(start, i);
      }
      if (c === 0x5c) break;
      if (c < 0x20) {
        this.pos = i;
        throw this.unexpected('in string literal');
      }
    }
    return this.escapedString(start);
  }

  private escapedString(start: number): string {
    const { s } = this;
    let out = '';
    let i = start;
    let chunk = start;
    while (i < s.length) {
      const c = s.charCodeAt(i);
      if (c === 0x22) {
        this.pos = i + 1;
        return out + s.slice(chunk, i);
      }
      if (c < 0x20) {
        this.pos = i;
        throw this.unexpected('in string literal');
      }
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += s.slice(chunk, i);
      const e = s[i + 1];
      if (e === undefined) break;
      const simple = ESCAPES[e];
      if (simple !== undefined) {
        out += simple;
        i += 2;
      } else if (e === 'u') {
        const hex = s.slice(i + 2, i + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) {
          this.pos = i + 2;
          throw this.unexpected('in \\u hexadecimal character escape');
        }
        // Go replaces an unpaired surrogate with U+FFFD; a JS string could carry it, the policy must not.
        const unit = parseInt(hex, 16);
        const next = unit >= 0xd800 && unit < 0xdc00 && s[i + 6] === '\\' && s[i + 7] === 'u' ? s.slice(i + 8, i + 12) : '';
        const low = /^[0-9a-fA-F]{4}$/.test(next) ? parseInt(next, 16) : -1;
        if (low >= 0xdc00 && low < 0xe000) {
          out += String.fromCharCode(unit, low);
          i += 12;
        } else {
          out += unit >= 0xd800 && unit < 0xe000 ? '\ufffd' : String.fromCharCode(unit);
          i += 6;
        }
      } else {
        this.pos = i + 1;
        throw this.unexpected('in string escape code');
      }
      chunk = i;
    }
    throw parseError('unexpected EOF');
  }

  private number(): unknown {
    NUMBER.lastIndex = this.pos;
    const m = NUMBER.exec(this.s);
    if (m === null) {
      this.pos++;
      throw this.unexpected('in numeric literal');
    }
    this.pos += m[0].length;
    const n = numberFromLexeme(m[0]);
    if (typeof n !== 'number') this.exactNumbers = true;
    return n;
  }

  private literal(word: string, value: unknown): unknown {
    for (let k = 0; k < word.length; k++) {
      const c = this.s[this.pos + k];
      if (c === undefined) throw parseError('unexpected EOF');
      if (c !== word[k]) {
        this.pos += k;
        throw this.unexpected(`in literal ${word} (expecting ${quoteChar(word[k] as string)})`);
      }
    }
    this.pos += word.length;
    return value;
  }

  private unexpected(context: string): VerdictError {
    const c = this.s[this.pos];
    if (c === undefined) return parseError('unexpected EOF');
    return parseError(`invalid character ${quoteChar(c)} ${context}`);
  }
}

const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

/** Go's quoteChar in encoding/json: `'x'`, with `\'` and `\"` escaped, control characters quoted. */
function quoteChar(c: string): string {
  if (c === "'") return `'\\''`;
  if (c === '"') return `'"'`;
  const code = c.charCodeAt(0);
  if (code < 0x20) return JSON.stringify(c).replace(/^"|"$/g, "'");
  return `'${c}'`;
}

function parseError(reason: string): VerdictError {
  return new VerdictError('ERR_REQUEST_BODY_PARSE', reason);
}
