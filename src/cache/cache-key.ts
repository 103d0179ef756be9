import type { CheckRequest } from '../request/check-request';
import { ExactNumber } from '../request/exact-number';
import type { InputDocument, SPIFFEInput } from '../request/input-document';
import { parseRequestPath } from '../request/go-url';
import type { CacheDeclaration } from './cache-declaration';

/**
 * Cache keys, built field by field: the bundle sha256, then each declared path's value in a canonical,
 * injective encoding (type tag + length prefix, object keys sorted). Never JSON.stringify of the input.
 *
 * Values are read either from the decoded CheckRequest and the verified SPIFFE block (a cache hit never
 * builds the input document) or, for paths only the input document has (parsed_body, truncated_body,
 * version), from the built input.
 */

/** First segments whose value is read straight from the CheckRequest / SPIFFE block. */
const RAW_ROOTS = new Set(['attributes', 'spiffe', 'source_principal', 'parsed_path', 'parsed_query']);

/** True when every declared path can be read without building the input document. */
export function isRequestKeyable(decl: CacheDeclaration): boolean {
  return decl.keySegments.every((segs) => RAW_ROOTS.has(segs[0] as string));
}

export function requestKey(bundleSHA256: string, decl: CacheDeclaration, req: CheckRequest, spiffe: SPIFFEInput | null): string {
  return keyFromValues(bundleSHA256, requestKeyValues(decl, req, spiffe));
}

/**
 * The declared paths' values read from the request, in declaration order: computed once per Check and
 * used for both the key and, on a hit, the logged key fields. The request path is parsed at most once.
 */
export function requestKeyValues(decl: CacheDeclaration, req: CheckRequest, spiffe: SPIFFEInput | null): unknown[] {
  const segments = decl.keySegments;
  const values: unknown[] = [];
  let url: ParsedUrlMemo | undefined;
  for (let i = 0; i < segments.length; i++) {
    const segs = segments[i]!;
    const root = segs[0];
    // The parsed-URL memo only for the paths that read it: most keys (method, path, SPIFFE ID) do not.
    if (root === 'parsed_path' || root === 'parsed_query') values.push(requestValue(segs, req, spiffe, (url ??= { parsed: undefined })));
    else values.push(requestValue(segs, req, spiffe));
  }
  return values;
}

export function keyFromValues(bundleSHA256: string, values: readonly unknown[]): string {
  let key = bundleSHA256;
  // An index loop: `for…of` allocated an iterator per Check here.
  for (let i = 0; i < values.length; i++) key += `|${encode(values[i])}`;
  return key;
}

export function inputKey(bundleSHA256: string, decl: CacheDeclaration, input: InputDocument): string {
  let key = bundleSHA256;
  for (const segs of decl.keySegments) key += `|${encode(walk(input, segs, 0))}`;
  return key;
}

/** The declared key fields as a nested object (what the decision log records on a cache hit). */
export function requestKeyFields(decl: CacheDeclaration, req: CheckRequest, spiffe: SPIFFEInput | null): Record<string, unknown> {
  return keyFieldsFromValues(decl, requestKeyValues(decl, req, spiffe));
}

/** The same from values already read by requestKeyValues. */
export function keyFieldsFromValues(decl: CacheDeclaration, values: readonly unknown[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  decl.keySegments.forEach((segs, i) => {
    const value = values[i];
    if (value === undefined) return;
    let node = out;
    for (let j = 0; j < segs.length - 1; j++) {
      const s = segs[j] as string;
      const next = node[s];
      node = (typeof next === 'object' && next !== null ? next : (node[s] = {})) as Record<string, unknown>;
    }
    node[segs[segs.length - 1] as string] = value;
  });
  return out;
}

/** The parsed request path of one request, shared by its key paths (null: it does not parse). */
interface ParsedUrlMemo {
  parsed: ReturnType<typeof parseRequestPath> | null | undefined;
}

/** The value the input document would hold at `segs`, computed from the request without building it. */
export function requestValue(segs: readonly string[], req: CheckRequest, spiffe: SPIFFEInput | null, memo?: ParsedUrlMemo): unknown {
  const attrs = req.attributes;
  switch (segs[0]) {
    case 'spiffe':
      return spiffe ? walk(spiffe, segs, 1) : undefined;
    case 'source_principal':
      // input-document.ts sets source_principal only when the principal is non-empty.
      return walk(attrs?.source?.principal || undefined, segs, 1);
    case 'parsed_path':
    case 'parsed_query': {
      // A memo of its own when the caller shares none (one path read alone).
      memo ??= { parsed: undefined };
      if (memo.parsed === undefined) {
        try {
          // The pre-check (request-precheck.ts) has refused bad and over-long queries already.
          memo.parsed = parseRequestPath(attrs?.request?.http?.path ?? '', Number.MAX_SAFE_INTEGER);
        } catch {
          memo.parsed = null;
        }
      }
      const url = memo.parsed;
      if (url === null) return undefined;
      return walk(segs[0] === 'parsed_path' ? url.parsedPath : url.parsedQuery, segs, 1);
    }
    case 'attributes':
      return attributesValue(segs, req);
    default:
      throw new TypeError(`cache key path "${segs.join('.')}" is not readable from the request`);
  }
}

/** The decoder already produced the policy's shape (check-request-decoder.ts): read it as it is. */
function attributesValue(segs: readonly string[], req: CheckRequest): unknown {
  return walk(req.attributes, segs, 1);
}

function walk(root: unknown, segs: readonly string[], from: number): unknown {
  let node = root;
  for (let i = from; i < segs.length; i++) {
    if (typeof node !== 'object' || node === null) return undefined;
    const s = segs[i] as string;
    if (!Object.prototype.hasOwnProperty.call(node, s)) return undefined;
    node = (node as Record<string, unknown>)[s];
  }
  return node;
}

/** Injective: a type tag, and a length before every string, so no two values encode alike. */
export function encode(v: unknown): string {
  switch (typeof v) {
    case 'undefined':
      return 'u';
    case 'boolean':
      return v ? 't' : 'f';
    case 'number':
      return `n${v};`;
    case 'string':
      return `s${v.length}:${v}`;
    case 'object': {
      if (v === null) return 'z';
      // Its own tag: an exact number never collides with an object of the same keys, nor with a double.
      if (v instanceof ExactNumber) return `x${v.lexeme.length}:${v.lexeme}`;
      if (Array.isArray(v)) {
        let out = `a${v.length}[`;
        for (const item of v) out += encode(item);
        return `${out}]`;
      }
      const keys = Object.keys(v).sort();
      let out = `o${keys.length}{`;
      for (const k of keys) out += `${k.length}:${k}${encode((v as Record<string, unknown>)[k])}`;
      return `${out}}`;
    }
    default:
      // bigint / function / symbol never occur in a decoded CheckRequest; refuse rather than guess.
      throw new TypeError(`cannot encode a ${typeof v} into a cache key`);
  }
}
