// mesh-acl: an example custom engine for verdict, written in AssemblyScript.
//
// It decides like verdict's default policy (policies/default), with the rules compiled in: allow by
// SPIFFE ID, method and path glob; explicit deny rules win; no match denies (403). It reads only the three
// input fields it needs, scanning the input JSON in place (no parse tree, no copies).
//
// ABI (docs/engines.md): exports `memory`, `alloc(len) -> ptr` and `evaluate(ptr, len) -> i64` where the
// result is (decision_ptr << 32) | decision_len, a UTF-8 JSON decision. No imports. Memory from one call
// is dead at the next `alloc`: the stub runtime's bump allocator is reset there.

class Rule {
  constructor(
    public id: string,
    public principals: string[],
    public methods: string[],
    public paths: string[],
  ) {}
}

// Built per call, after the allocator reset: the stub runtime's reset would reclaim objects made at start-up.
function allowRules(): Rule[] {
  return [
    new Rule('health-probes', ['anyone'], ['GET', 'HEAD'], ['/healthz', '/readyz']),
    new Rule('public-docs', ['anyone'], ['GET'], ['/public/**']),
    new Rule('frontend-reads-api', ['spiffe://example.org/ns/default/sa/frontend'], ['GET', 'HEAD'], ['/api/**']),
    new Rule('billing-writes-invoices', ['spiffe://example.org/ns/billing/sa/*'], ['POST', 'PUT'], ['/api/invoices', '/api/invoices/*']),
    new Rule('mesh-reads-status', ['authenticated'], ['GET'], ['/status']),
  ];
}

function denyRules(): Rule[] {
  return [new Rule('no-admin-over-mesh', ['anyone'], ['*'], ['/admin', '/admin/**'])];
}

/** A byte range of the input: a JSON string's raw contents (escapes kept), or none (start < 0). */
class Slice {
  constructor(
    public start: i32,
    public end: i32,
  ) {}
  get found(): bool {
    return this.start >= 0;
  }
}

let base: usize = 0;

export function alloc(len: i32): usize {
  __reset();
  return __alloc(<usize>len);
}

export function evaluate(ptr: usize, len: i32): i64 {
  base = ptr;
  const id = lookup(len, ['spiffe', 'id']);
  const method = lookup(len, ['attributes', 'request', 'http', 'method']);
  const rawPath = lookup(len, ['attributes', 'request', 'http', 'path']);
  if (!method.found || !rawPath.found) return respond('{"allowed":false,"http_status":400,"reason":"input_lacks_method_or_path"}');
  const path = new Slice(rawPath.start, pathEnd(rawPath));
  const DENY = denyRules();
  const ALLOW = allowRules();

  let denied = '';
  for (let i = 0; i < DENY.length; i++)
    if (matches(DENY[i], id, method, path) && (denied == '' || DENY[i].id < denied)) denied = DENY[i].id;
  if (denied != '') return respond(denyJSON(denied));
  let allowed = '';
  for (let i = 0; i < ALLOW.length; i++)
    if (matches(ALLOW[i], id, method, path) && (allowed == '' || ALLOW[i].id < allowed)) allowed = ALLOW[i].id;
  if (allowed != '') return respond('{"allowed":true,"reason":"' + allowed + '","headers":{"x-verdict-rule":"' + allowed + '"}}');
  return respond(denyJSON('no_rule_matched'));
}

function denyJSON(reason: string): string {
  return (
    '{"allowed":false,"http_status":403,"reason":"' +
    reason +
    '","headers":{"x-verdict-policy":"mesh-acl"},"body":"access denied by policy\\n"}'
  );
}

function respond(json: string): i64 {
  const buf = String.UTF8.encode(json);
  return ((<i64>changetype<usize>(buf)) << 32) | (<i64>buf.byteLength);
}

function matches(rule: Rule, id: Slice, method: Slice, path: Slice): bool {
  let p = false;
  for (let i = 0; i < rule.principals.length && !p; i++) p = principalMatches(rule.principals[i], id);
  if (!p) return false;
  let m = false;
  for (let i = 0; i < rule.methods.length && !m; i++) m = rule.methods[i] == '*' || equals(rule.methods[i], method);
  if (!m) return false;
  for (let i = 0; i < rule.paths.length; i++) if (glob(rule.paths[i], 0, path.start, path.end)) return true;
  return false;
}

function principalMatches(pattern: string, id: Slice): bool {
  if (pattern == 'anyone') return true;
  if (pattern == 'authenticated') return id.found;
  return id.found && glob(pattern, 0, id.start, id.end);
}

/** The request path without its query or fragment. */
function pathEnd(s: Slice): i32 {
  for (let i = s.start; i < s.end; i++) {
    const c = byte(i);
    if (c == 0x3f || c == 0x23) return i;
  }
  return s.end;
}

function equals(text: string, s: Slice): bool {
  if (text.length != s.end - s.start) return false;
  for (let i = 0; i < text.length; i++) if (<i32>text.charCodeAt(i) != byte(s.start + i)) return false;
  return true;
}

/** OPA glob with "/" as the delimiter: "*" matches within one segment, "**" across segments. */
function glob(pattern: string, pi: i32, si: i32, end: i32): bool {
  while (pi < pattern.length) {
    const c = pattern.charCodeAt(pi);
    if (c == 0x2a) {
      const any = pi + 1 < pattern.length && pattern.charCodeAt(pi + 1) == 0x2a;
      const next = any ? pi + 2 : pi + 1;
      for (let k = si; k <= end; k++) {
        if (glob(pattern, next, k, end)) return true;
        if (k < end && !any && byte(k) == 0x2f) return false;
      }
      return false;
    }
    if (si >= end || byte(si) != <i32>c) return false;
    pi++;
    si++;
  }
  return si == end;
}

// --- a minimal in-place JSON scanner ---------------------------------------------------------------

function byte(i: i32): i32 {
  return <i32>load<u8>(base + <usize>i);
}

function ws(i: i32, len: i32): i32 {
  while (i < len) {
    const c = byte(i);
    if (c != 0x20 && c != 0x0a && c != 0x0d && c != 0x09) break;
    i++;
  }
  return i;
}

/** End (exclusive) of the string whose opening quote is at i, or -1. */
function stringEnd(i: i32, len: i32): i32 {
  i++;
  while (i < len) {
    const c = byte(i);
    if (c == 0x5c) i += 2;
    else if (c == 0x22) return i + 1;
    else i++;
  }
  return -1;
}

/** End (exclusive) of the value starting at i, or -1 for malformed input. Depth is bounded by a counter. */
function valueEnd(i: i32, len: i32): i32 {
  if (i >= len) return -1;
  const c = byte(i);
  if (c == 0x22) return stringEnd(i, len);
  if (c == 0x7b || c == 0x5b) {
    let depth = 0;
    while (i < len) {
      const d = byte(i);
      if (d == 0x22) {
        i = stringEnd(i, len);
        if (i < 0) return -1;
        continue;
      }
      if (d == 0x7b || d == 0x5b) depth++;
      else if (d == 0x7d || d == 0x5d) {
        depth--;
        if (depth == 0) return i + 1;
      }
      i++;
    }
    return -1;
  }
  while (i < len) {
    const d = byte(i);
    if (d == 0x2c || d == 0x7d || d == 0x5d || d == 0x20 || d == 0x0a || d == 0x0d || d == 0x09) return i;
    i++;
  }
  return i;
}

/** The string at keys[0].keys[1]…, or a not-found Slice (also for any non-string value or bad JSON). */
function lookup(len: i32, keys: string[]): Slice {
  let i = ws(0, len);
  for (let k = 0; k < keys.length; k++) {
    i = member(i, len, keys[k]);
    if (i < 0) return new Slice(-1, -1);
  }
  if (i >= len || byte(i) != 0x22) return new Slice(-1, -1);
  const end = stringEnd(i, len);
  return end < 0 ? new Slice(-1, -1) : new Slice(i + 1, end - 1);
}

/** Start of the value of `key` in the object at i, or -1. */
function member(i: i32, len: i32, key: string): i32 {
  if (i >= len || byte(i) != 0x7b) return -1;
  i = ws(i + 1, len);
  while (i < len && byte(i) == 0x22) {
    const keyEnd = stringEnd(i, len);
    if (keyEnd < 0) return -1;
    const hit = equals(key, new Slice(i + 1, keyEnd - 1));
    i = ws(keyEnd, len);
    if (i >= len || byte(i) != 0x3a) return -1;
    i = ws(i + 1, len);
    if (hit) return i;
    i = valueEnd(i, len);
    if (i < 0) return -1;
    i = ws(i, len);
    if (i < len && byte(i) == 0x2c) i = ws(i + 1, len);
  }
  return -1;
}

/** verdict gives no imports, so abort (assertion failures, bounds) traps instead of calling the host. */
// eslint-disable-next-line @typescript-eslint/no-unused-vars -- wired in by asc --use abort=…
function abort(_message: string | null, _file: string | null, _line: u32, _column: u32): void {
  unreachable();
}
