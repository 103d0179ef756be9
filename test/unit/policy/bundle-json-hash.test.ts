import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJSONWrite, hashStructuredJSON } from '../../../src/policy/bundle-json-hash';

/** The canonical text as a string, from every chunk the writer emits. */
function canon(text: string | Buffer): string {
  const parts: Buffer[] = [];
  canonicalJSONWrite(Buffer.isBuffer(text) ? text : Buffer.from(text, 'utf8'), (chunk) => parts.push(Buffer.from(chunk)), isUtf8);
  return Buffer.concat(parts).toString('utf8');
}

/**
 * An independent reference for documents whose numbers JSON.parse keeps as written: parse, then re-encode
 * with keys in UTF-8 byte order and Go's string escaping (JSON.stringify plus U+2028/U+2029).
 */
function reference(text: string): string {
  const str = (s: string): string =>
    JSON.stringify(s)
      .replace(/\u2028/g, '\\u2028')
      .replace(/\u2029/g, '\\u2029');
  const enc = (v: unknown): string => {
    if (Array.isArray(v)) return `[${v.map(enc).join(',')}]`;
    if (v !== null && typeof v === 'object') {
      const keys = Object.keys(v).sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
      return `{${keys.map((k) => `${str(k)}:${enc((v as Record<string, unknown>)[k])}`).join(',')}}`;
    }
    return typeof v === 'string' ? str(v) : JSON.stringify(v);
  };
  return enc(JSON.parse(text));
}

describe('canonicalJSONWrite (OPA canonical JSON, on bytes)', () => {
  const cases: { name: string; text: string; canonical: string }[] = [
    { name: 'keys sorted, whitespace dropped', text: ' { "b" : 1 ,\n\t"a" : [ 2 , 3 ] }\r\n', canonical: '{"a":[2,3],"b":1}' },
    {
      name: 'numbers kept as written',
      text: '[1.50, 2e3, -0, 1E+2, 0.0, 12345678901234567890]',
      canonical: '[1.50,2e3,-0,1E+2,0.0,12345678901234567890]',
    },
    { name: 'duplicate keys: the last one wins', text: '{"a":1,"b":2,"a":3}', canonical: '{"a":3,"b":2}' },
    { name: 'escaped and raw spellings of one key are one key', text: '{"\\u00e9":1,"é":2}', canonical: '{"é":2}' },
    {
      name: 'escapes re-encoded as encoding/json writes them',
      text: '"\\u00e9\\/\\u000a\\u0001\\"\\\\"',
      canonical: '"é/\\n\\u0001\\"\\\\"',
    },
    { name: 'U+2028 and U+2029 escaped, raw or not', text: '["\u2028", "\\u2029"]', canonical: '["\\u2028","\\u2029"]' },
    {
      name: 'UTF-8 byte order: U+E000 and U+FFFF before an astral character',
      text: '{"😀":1,"\uffff":2,"\ue000":3,"z":4}',
      canonical: '{"z":4,"\ue000":3,"\uffff":2,"😀":1}',
    },
    {
      name: 'a key that is a prefix sorts first, whatever follows it',
      text: '{"ab ":1,"ab":2,"ab!":3}',
      canonical: '{"ab":2,"ab ":1,"ab!":3}',
    },
    { name: 'keys compared decoded, not as escaped', text: '{"k\\"q":1,"k!":2}', canonical: '{"k!":2,"k\\"q":1}' },
    {
      name: 'nested objects reordered inside a reordered one',
      text: '{"z":{"y":{"b":1,"a":2},"x":[{"d":0,"c":0}]},"a":0}',
      canonical: '{"a":0,"z":{"x":[{"c":0,"d":0}],"y":{"a":2,"b":1}}}',
    },
    { name: 'literals and empty containers', text: '[true, false, null, {}, [], {"a":{}}]', canonical: '[true,false,null,{},[],{"a":{}}]' },
  ];

  it.each(cases)('$name', ({ text, canonical }) => {
    expect(canon(text)).toBe(canonical);
  });

  it('decodes invalid UTF-8 with replacement characters, as a decode of the whole file does', () => {
    const bytes = Buffer.concat([Buffer.from('{"b":"'), Buffer.from([0xff, 0xfe]), Buffer.from('","a":1}')]);
    expect(isUtf8(bytes)).toBe(false);
    expect(canon(bytes)).toBe('{"a":1,"b":"\ufffd\ufffd"}');
  });

  it('sorts an object of many members (past the insertion-sort size) and keeps the last of its duplicates', () => {
    const keys = Array.from({ length: 300 }, (_, i) => `k${(i * 7919) % 200}`);
    const text = `{${keys.map((k, i) => `"${k}":${i}`).join(',')}}`;
    expect(canon(text)).toBe(reference(text));
  });

  const refusals: { name: string; text: string }[] = [
    { name: 'trailing characters', text: '{"a":1} x' },
    { name: 'a leading zero', text: '01' },
    { name: 'a number with no digits after the point', text: '1.' },
    { name: 'a trailing comma', text: '{"a":1,}' },
    { name: 'a missing comma', text: '[1 2]' },
    { name: 'a raw control character in a string', text: '"a\u0001"' },
    { name: 'an unknown escape', text: '"\\x41"' },
    { name: 'a short \\u escape', text: '"\\u12"' },
    { name: 'an unterminated string', text: '{"a":"b' },
    { name: 'a lone surrogate escape', text: '["\\ud800"]' },
    { name: 'a lone low surrogate escape', text: '{"\\udc00":1}' },
    { name: 'nesting past 512 levels', text: '['.repeat(514) + ']'.repeat(514) },
    { name: 'an empty document', text: '' },
    { name: 'a byte-order mark', text: '\ufeff{}' },
  ];

  it.each(refusals)('refuses $name (ERR_BUNDLE_INVALID from hashStructuredJSON)', ({ text }) => {
    expect(() => canon(text)).toThrow(/not valid JSON/);
    expect(() => hashStructuredJSON(Buffer.from(text, 'utf8'), 'sha256')).toThrow(expect.objectContaining({ code: 'ERR_BUNDLE_INVALID' }));
  });

  it('accepts nesting of exactly 512 levels below the top', () => {
    expect(canon('['.repeat(513) + ']'.repeat(513))).toBe('['.repeat(513) + ']'.repeat(513));
  });

  it('a surrogate pair written as escapes is one character', () => {
    expect(canon('"\\ud83d\\ude00"')).toBe('"😀"');
  });

  it('flushes a large top-level array to the sink in chunks whose concatenation is the canonical text', () => {
    const rows = Array.from({ length: 120_000 }, (_, i) => `{ "z": ${i}, "a": "r${i}" }`);
    const text = Buffer.from(`[${rows.join(', ')}]`);
    const chunks: Buffer[] = [];
    canonicalJSONWrite(text, (c) => chunks.push(Buffer.from(c)), isUtf8);
    expect(chunks.length).toBeGreaterThan(1);
    const joined = Buffer.concat(chunks).toString('utf8');
    expect(joined).toBe(reference(text.toString('utf8')));
    expect(hashStructuredJSON(text, 'sha256')).toBe(createHash('sha256').update(joined).digest('hex'));
  });

  // Random documents, randomly spelled (whitespace, escapes, key order, duplicates), against the reference.
  it('matches the parse-and-re-encode reference on random documents (fast-check)', () => {
    const ws = fc.constantFrom('', ' ', '\n', '\t ', '\r\n');
    const chars = fc.constantFrom(
      'a',
      'b',
      'é',
      '\u2028',
      '\u2029',
      '"',
      '\\',
      '\n',
      '😀',
      '\u0001',
      '/',
      '\uffff',
      '\ue000',
      ' ',
      '!',
      '\u007f',
    );
    const text = fc.string({ unit: chars, maxLength: 6 });
    const spell = (s: string, escaped: boolean): string =>
      escaped
        ? JSON.stringify(s).replace(/[\u0080-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`)
        : JSON.stringify(s);
    const num = fc.constantFrom('0', '-1', '3.25', '1e+21', '100', '-0.5');
    const { doc } = fc.letrec<{ doc: string }>((tie) => ({
      doc: fc.oneof(
        { depthSize: 'small' },
        num,
        fc.constantFrom('true', 'false', 'null'),
        fc.tuple(text, fc.boolean()).map(([s, e]) => spell(s, e)),
        fc.tuple(fc.array(tie('doc'), { maxLength: 5 }), ws).map(([xs, w]) => `[${w}${xs.join(`${w},${w}`)}${w}]`),
        fc
          .tuple(fc.array(fc.tuple(fc.oneof(text, fc.constantFrom('a', 'b', 'ab')), fc.boolean(), tie('doc')), { maxLength: 20 }), ws)
          .map(([ms, w]) => `{${w}${ms.map(([k, e, v]) => `${spell(k, e)}${w}:${w}${v}`).join(`,${w}`)}${w}}`),
      ),
    }));
    fc.assert(
      fc.property(doc, (t) => canon(t) === reference(t)),
      { numRuns: 3000, seed: 8 },
    );
  });
});
