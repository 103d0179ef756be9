import { lowerASCII } from '../ascii';
import { VerdictError } from '../errors';
import { parseExactJSON } from './exact-json-parse';

export interface MultipartLimits {
  maxParsedBodyBytes: number;
  maxInputDepth: number;
  /** Parts are counted as parameters (ERR_REQUEST_TOO_MANY_PARAMS past it). */
  maxQueryParams: number;
}

/** A part's values sit at parsed_body.<name>[i]: three levels under the input root. */
const PART_DEPTH = 3;

/**
 * A multipart/form-data body as opa-envoy-plugin reads it (envoyauth/request.go `getParsedBody`), read the
 * way Go's mime.ParseMediaType, mime/multipart and net/textproto read it, so that the policy sees the parts
 * the peer (and an upstream with Go's reader) sees: the boundary from the content type (RFC 2045 §5.1
 * parameters, RFC 2231 `boundary*` forms override a plain `boundary`, a repeated parameter is an error);
 * parts between delimiter lines (RFC 2046 §5.1.1, transport padding allowed); a part's name from its
 * Content-Disposition (form-data only; a disposition that does not parse names nothing and the part is
 * skipped); a part whose Content-Type contains application/json is decoded, every other part is its bytes
 * as text; the result maps each name to the list of its values. A content type without a boundary gives
 * null (not an error).
 *
 * Refused where Go would read something else than a plain reader (deny on doubt, ERR_REQUEST_BODY_PARSE):
 * a Content-Transfer-Encoding other than 7bit/8bit/binary (Go decodes quoted-printable; RFC 7578 §4.7
 * deprecates the field), folded or malformed part header lines, and a boundary outside RFC 2046's 1–70 bytes.
 *
 * Strings are handled as Go handles them, as bytes: a "binary" string holds one byte per character.
 */
export async function parseMultipart(
  contentType: string,
  body: Buffer,
  limits: MultipartLimits,
): Promise<{ value: Record<string, unknown[]>; exactNumbers: boolean } | null> {
  const boundary = parseMediaType(Buffer.from(contentType, 'utf8').toString('latin1')).params.get('boundary');
  if (boundary === undefined) return null;
  const value = Object.create(null) as Record<string, unknown[]>;
  let exactNumbers = false;
  for (const part of readParts(body, boundary, limits.maxQueryParams)) {
    checkTransferEncoding(part.headers);
    const name = formName(part.headers);
    if (name === '') continue; // not read: a body without a delimiter is found by the next part's read
    if (part.data === null) throw bodyError('unexpected EOF');
    let v: unknown = part.data.toString('utf8');
    if ((firstHeader(part.headers, 'content-type') ?? '').includes('application/json')) {
      const parsed = parseExactJSON(v as string, PART_DEPTH, limits.maxInputDepth);
      v = parsed.value;
      exactNumbers ||= parsed.exactNumbers;
    }
    const list = value[name];
    if (list) list.push(v);
    else value[name] = [v];
  }
  return { value, exactNumbers };
}

function bodyError(message: string): VerdictError {
  return new VerdictError('ERR_REQUEST_BODY_PARSE', message);
}

// --- media types (RFC 2045 §5.1, RFC 2231), as mime.ParseMediaType reads them -------------------------

interface MediaType {
  type: string;
  params: Map<string, string>;
}

const TSPECIALS = '()<>@,;:\\"/[]?=';

function isTokenChar(c: string): boolean {
  const code = c.charCodeAt(0);
  return code > 0x20 && code < 0x7f && !TSPECIALS.includes(c);
}

/** Bytes of a Unicode White_Space character (Go's unicode.IsSpace) at i of a binary string, or 0. */
function spaceAt(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (c === 0x20 || (c >= 0x09 && c <= 0x0d)) return 1;
  const c1 = s.charCodeAt(i + 1);
  if (c === 0xc2) return c1 === 0x85 || c1 === 0xa0 ? 2 : 0;
  const c2 = s.charCodeAt(i + 2);
  if (c === 0xe1) return c1 === 0x9a && c2 === 0x80 ? 3 : 0;
  if (c === 0xe2 && c1 === 0x80) return (c2 >= 0x80 && c2 <= 0x8a) || c2 === 0xa8 || c2 === 0xa9 || c2 === 0xaf ? 3 : 0;
  if (c === 0xe2 && c1 === 0x81) return c2 === 0x9f ? 3 : 0;
  if (c === 0xe3) return c1 === 0x80 && c2 === 0x80 ? 3 : 0;
  return 0;
}

function skipSpace(s: string, i: number): number {
  for (let n = spaceAt(s, i); n > 0; n = spaceAt(s, i)) i += n;
  return i;
}

function trimSpace(s: string): string {
  const start = skipSpace(s, 0);
  let end = s.length;
  // Trailing White_Space: at most 3 bytes each; look back for one that ends exactly at `end`.
  for (let moved = true; moved && end > start;) {
    moved = false;
    for (let n = 1; n <= 3 && end - n >= start; n++) {
      if (spaceAt(s, end - n) === n) {
        end -= n;
        moved = true;
        break;
      }
    }
  }
  return s.slice(start, end);
}

/** The end of the token starting at i. */
function tokenEnd(s: string, i: number): number {
  while (i < s.length && isTokenChar(s[i] as string)) i++;
  return i;
}

/** A token or a quoted-string at i: [value, end], or null. A backslash quotes only a tspecial (else it is itself). */
function consumeValue(s: string, i: number): [string, number] | null {
  if (s[i] !== '"') {
    const end = tokenEnd(s, i);
    return end === i ? null : [s.slice(i, end), end];
  }
  let out = '';
  for (let j = i + 1; j < s.length; j++) {
    const c = s[j] as string;
    if (c === '"') return [out, j + 1];
    if (c === '\\' && j + 1 < s.length && TSPECIALS.includes(s[j + 1] as string)) {
      out += s[++j];
      continue;
    }
    if (c === '\r' || c === '\n') return null;
    out += c;
  }
  return null;
}

/** `; name = value` at i: [lowercased name, value, end], or null. */
function consumeParam(s: string, i: number): [string, string, number] | null {
  i = skipSpace(s, i);
  if (s[i] !== ';') return null;
  i = skipSpace(s, i + 1);
  const nameEnd = tokenEnd(s, i);
  if (nameEnd === i) return null;
  const name = lowerASCII(s.slice(i, nameEnd));
  i = skipSpace(s, nameEnd);
  if (s[i] !== '=') return null;
  const value = consumeValue(s, skipSpace(s, i + 1));
  return value === null ? null : [name, value[0], value[1]];
}

/** `type` or `type/subtype`, both tokens. */
function checkType(t: string): void {
  const first = tokenEnd(t, 0);
  if (first === 0) throw bodyError('mime: no media type');
  if (first === t.length) return;
  if (t[first] !== '/') throw bodyError('mime: expected slash after first token');
  const second = tokenEnd(t, first + 1);
  if (second === first + 1) throw bodyError('mime: expected token after slash');
  if (second !== t.length) throw bodyError('mime: unexpected content after media subtype');
}

/** Throws ERR_REQUEST_BODY_PARSE with Go's message where mime.ParseMediaType returns an error. */
function parseMediaType(v: string): MediaType {
  const semi = v.indexOf(';');
  const type = trimSpace(lowerASCII(semi === -1 ? v : v.slice(0, semi)));
  checkType(type);
  const params = new Map<string, string>();
  // RFC 2231 §3-4: `name*` (charset'lang'%xx) and `name*0`, `name*1*`…, by base name.
  const extended = new Map<string, Map<string, string>>();
  let i = semi === -1 ? v.length : semi;
  while (i < v.length) {
    i = skipSpace(v, i);
    if (i === v.length) break;
    const p = consumeParam(v, i);
    if (p === null) {
      if (trimSpace(v.slice(i)) === ';') break; // a trailing semicolon
      throw bodyError('mime: invalid media parameter');
    }
    const [name, value, end] = p;
    const star = name.indexOf('*');
    let into = params;
    if (star !== -1) {
      const base = name.slice(0, star);
      into = extended.get(base) ?? new Map<string, string>();
      extended.set(base, into);
    }
    const prior = into.get(name);
    if (prior !== undefined && prior !== value) throw bodyError('mime: duplicate parameter name');
    into.set(name, value);
    i = end;
  }
  for (const [base, pieces] of extended) {
    const whole = pieces.get(`${base}*`);
    if (whole !== undefined) {
      const decoded = decodeExtended(whole);
      if (decoded !== null) params.set(base, decoded);
      continue;
    }
    let joined = '';
    let any = false;
    for (let n = 0; ; n++) {
      const plain = pieces.get(`${base}*${n}`);
      if (plain !== undefined) {
        joined += plain;
        any = true;
        continue;
      }
      const encoded = pieces.get(`${base}*${n}*`);
      if (encoded === undefined) break;
      any = true;
      joined += (n === 0 ? decodeExtended(encoded) : percentDecode(encoded)) ?? '';
    }
    if (any) params.set(base, joined);
  }
  return { type, params };
}

/** RFC 2231 §4 `charset'language'value`; only us-ascii and utf-8 are read (else null, as Go). */
function decodeExtended(v: string): string | null {
  const a = v.indexOf("'");
  const b = a === -1 ? -1 : v.indexOf("'", a + 1);
  if (b === -1) return null;
  const charset = lowerASCII(v.slice(0, a));
  if (charset !== 'us-ascii' && charset !== 'utf-8') return null;
  return percentDecode(v.slice(b + 1));
}

function percentDecode(v: string): string | null {
  let out = '';
  for (let i = 0; i < v.length; i++) {
    if (v[i] !== '%') {
      out += v[i];
      continue;
    }
    const hex = v.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return null;
    out += String.fromCharCode(parseInt(hex, 16));
    i += 2;
  }
  return out;
}

// --- parts (RFC 2046 §5.1.1), as mime/multipart's Reader.NextPart reads them -------------------------

interface Part {
  /** Lowercased header name → values in order (binary strings, trimmed). */
  headers: Map<string, string[]>;
  /** Null when no delimiter ends it (an error only if the part is read). */
  data: Buffer | null;
}

/** Go's bufio buffer under multipart.Reader: a line between parts longer than this is an error there. */
const MAX_LINE_BYTES = 4096;
/** textproto's bounds for one part's header block (Go's multipart defaults). */
const MAX_PART_HEADERS = 10_000;
const MAX_PART_HEADER_BYTES = 10 * 1024 * 1024;

/** One part at a time, so that errors come in the order Go's reader meets them (a JSON part before a later framing fault). */
function* readParts(body: Buffer, boundary: string, maxParts: number): Generator<Part> {
  // RFC 2046 §5.1.1: 1 to 70 characters. Go takes any length, but past its 4 KiB line buffer it no
  // longer finds the delimiter: neither is read here.
  if (boundary.length === 0 || boundary.length > 70) throw bodyError('multipart: boundary must be 1 to 70 bytes (RFC 2046 §5.1.1)');
  const dash = Buffer.from(`--${boundary}`, 'latin1');
  let nl = Buffer.from('\r\n');
  let nlDash = Buffer.concat([nl, dash]);
  let partsRead = 0;
  let pos = 0;

  const lineAt = (at: number): { line: Buffer; end: number; eof: boolean } => {
    const lf = body.indexOf(0x0a, at);
    // A line (its LF included) must fit the buffer; without an LF, the buffer must not fill before the end.
    if (lf === -1 ? body.length - at >= MAX_LINE_BYTES : lf - at + 1 > MAX_LINE_BYTES)
      throw bodyError('multipart: NextPart: bufio: buffer full');
    return lf === -1
      ? { line: body.subarray(at), end: body.length, eof: true }
      : { line: body.subarray(at, lf + 1), end: lf + 1, eof: false };
  };
  const afterPadding = (line: Buffer, from: number): Buffer => {
    while (from < line.length && (line[from] === 0x20 || line[from] === 0x09)) from++;
    return line.subarray(from);
  };
  const isDelimiter = (line: Buffer): boolean => {
    if (!startsWith(line, dash, 0)) return false;
    const rest = afterPadding(line, dash.length);
    if (partsRead === 0 && rest.length === 1 && rest[0] === 0x0a) {
      // The first delimiter line ends in a bare LF: so do all the others (Go's leniency).
      nl = Buffer.from('\n');
      nlDash = Buffer.concat([nl, dash]);
      return true;
    }
    return rest.equals(nl);
  };
  const isFinal = (line: Buffer): boolean => {
    if (!startsWith(line, dash, 0) || line[dash.length] !== 0x2d || line[dash.length + 1] !== 0x2d) return false;
    const rest = afterPadding(line, dash.length + 2);
    return rest.length === 0 || rest.equals(nl);
  };

  for (;;) {
    let expectPart = false;
    for (;;) {
      const { line, end, eof } = lineAt(pos);
      if (eof) {
        if (isFinal(line)) return;
        throw bodyError('multipart: NextPart: EOF');
      }
      pos = end;
      if (isDelimiter(line)) break;
      if (isFinal(line)) return;
      if (expectPart) throw bodyError(`multipart: expecting a new Part; got line ${JSON.stringify(line.toString('latin1'))}`);
      if (partsRead === 0) continue; // the preamble
      if (line.equals(nl)) {
        expectPart = true; // the line break before the next delimiter
        continue;
      }
      throw bodyError(`multipart: unexpected line in Next(): ${JSON.stringify(line.toString('latin1'))}`);
    }
    if (++partsRead > maxParts) throw new VerdictError('ERR_REQUEST_TOO_MANY_PARAMS', `more than ${maxParts} multipart parts`);
    const header = readHeaders(body, pos);
    if (header === null) return;
    const end = bodyEnd(body, header.end, dash, nlDash);
    yield { headers: header.headers, data: end === -1 ? null : body.subarray(header.end, end) };
    pos = end === -1 ? body.length : end;
  }
}

function startsWith(buf: Buffer, prefix: Buffer, at: number): boolean {
  return buf.length - at >= prefix.length && buf.compare(prefix, 0, prefix.length, at, at + prefix.length) === 0;
}

/**
 * Where a part's body ends: before the first `CRLF--boundary` (or the body's own start at `--boundary`)
 * that is followed by the end of the body, "--", a space, a tab, CR or LF. Anything else after it is
 * body data (`--boundaryX` is not a delimiter). -1 when no delimiter follows.
 */
function bodyEnd(body: Buffer, start: number, dash: Buffer, nlDash: Buffer): number {
  const delimits = (after: number): boolean => {
    if (after === body.length) return true;
    const c = body[after];
    if (c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a) return true;
    return c === 0x2d && body[after + 1] === 0x2d;
  };
  if (startsWith(body, dash, start) && delimits(start + dash.length)) return start;
  for (let from = start; ;) {
    const i = body.indexOf(nlDash, from);
    if (i === -1) return -1;
    if (delimits(i + nlDash.length)) return i;
    from = i + nlDash.length;
  }
}

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** textproto refuses control characters in a value but for tab; bytes >= 0x80 pass. */
function hasControlByte(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return true;
  }
  return false;
}

/**
 * One part's header block, up to and including its empty line (CRLF or LF line ends, as textproto), or
 * null when the body ends inside it: Go's NextPart then reports the end of the form, and the unfinished
 * part is no part (its last line, cut short, is still checked as a header line).
 */
function readHeaders(body: Buffer, start: number): { headers: Map<string, string[]>; end: number } | null {
  const headers = new Map<string, string[]>();
  let pos = start;
  for (let count = 0; ; count++) {
    const lf = body.indexOf(0x0a, pos);
    const lineEnd = lf === -1 ? body.length : lf;
    if (lineEnd + 1 - start > MAX_PART_HEADER_BYTES || count > MAX_PART_HEADERS) throw bodyError('message too large');
    const line = body.toString('latin1', pos, lf > pos && body[lf - 1] === 0x0d ? lf - 1 : lineEnd);
    pos = lineEnd + 1;
    if (lf === -1) {
      if (line !== '') addHeaderLine(headers, line);
      return null;
    }
    if (line === '') return { headers, end: pos };
    addHeaderLine(headers, line);
  }
}

function addHeaderLine(headers: Map<string, string[]>, line: string): void {
  // Folded (obs-fold) lines, names that are not tokens and values with control bytes are refused rather
  // than read as one of Go's leniencies (it joins folds, keeps `Name :` as a different name).
  if (line[0] === ' ' || line[0] === '\t') throw bodyError('multipart: a part header line is folded');
  const colon = line.indexOf(':');
  if (colon === -1) throw bodyError(`malformed MIME header: missing colon: ${JSON.stringify(line)}`);
  const name = line.slice(0, colon);
  const value = trimBlanks(line, colon + 1);
  if (!HEADER_NAME.test(name) || hasControlByte(value)) throw bodyError(`malformed MIME header line: ${JSON.stringify(line)}`);
  const key = lowerASCII(name);
  const list = headers.get(key);
  if (list) list.push(value);
  else headers.set(key, [value]);
}

/** s from `from`, without leading and trailing spaces and tabs (a loop: `[ \t]+$` backtracks quadratically). */
function trimBlanks(s: string, from: number): string {
  let end = s.length;
  while (from < end && (s[from] === ' ' || s[from] === '\t')) from++;
  while (end > from && (s[end - 1] === ' ' || s[end - 1] === '\t')) end--;
  return s.slice(from, end);
}

function firstHeader(headers: Map<string, string[]>, name: string): string | undefined {
  return headers.get(name)?.[0];
}

const IDENTITY_ENCODINGS = new Set(['7bit', '8bit', 'binary']);

/**
 * Go's reader decodes a quoted-printable part (and no other encoding), other readers decode base64 too,
 * and RFC 7578 §4.7 deprecates the field: a part that names any but an identity encoding is refused.
 */
function checkTransferEncoding(headers: Map<string, string[]>): void {
  const cte = firstHeader(headers, 'content-transfer-encoding');
  if (cte !== undefined && !IDENTITY_ENCODINGS.has(lowerASCII(cte))) {
    throw bodyError(`multipart: Content-Transfer-Encoding ${JSON.stringify(cte)} is not read (RFC 7578 §4.7)`);
  }
}

/** multipart.Part.FormName: the name of a form-data disposition, else "" (a part the peer skips). */
function formName(headers: Map<string, string[]>): string {
  const disposition = firstHeader(headers, 'content-disposition');
  if (disposition === undefined) return '';
  let parsed: MediaType;
  try {
    parsed = parseMediaType(disposition);
  } catch {
    return '';
  }
  if (parsed.type !== 'form-data') return '';
  return Buffer.from(parsed.params.get('name') ?? '', 'latin1').toString('utf8');
}
