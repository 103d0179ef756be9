import type { InputRead, NondeterministicCall, PolicyReads } from './input-read';

/**
 * The input paths a Rego module reads, from the AST `opa parse --format json` prints. Conservative by
 * construction: a reference is cut at its first non-constant part (`input.headers[k]` reads all of
 * `headers`), `input` passed whole (e.g. to a function) reads everything, and a variable bound to an input
 * reference (`x := input.spiffe`, `import input.attributes as a`) is followed into the paths read through it.
 * Over-reporting is safe; under-reporting would be a cache that answers wrongly.
 */
export function regoInputReads(module: unknown, file: string): PolicyReads {
  const out: PolicyReads = { inputs: [], nondeterministic: [] };
  const m = module as { imports?: { path?: Term; alias?: string }[]; rules?: RuleNode[] };
  const moduleAliases = importAliases(m.imports ?? []);
  for (const rule of m.rules ?? []) {
    const where = ruleName(rule);
    const aliases = new Map([...moduleAliases, ...localAliases(rule, moduleAliases)]);
    visit(rule, { aliases, file, where, out });
  }
  return out;
}

interface Term {
  type: string;
  value: unknown;
}

interface RuleNode {
  head?: { name?: string; ref?: Term[] };
  [k: string]: unknown;
}

interface Ctx {
  aliases: ReadonlyMap<string, readonly string[]>;
  file: string;
  where: string;
  out: PolicyReads;
}

/** Builtins whose answer is not a function of input and data: no key can make caching them safe. */
const NONDETERMINISTIC = new Set(['time.now_ns', 'http.send', 'rand.intn', 'uuid.rfc4122', 'net.lookup_ip_addr', 'opa.runtime']);

function isTerm(v: unknown): v is Term {
  return typeof v === 'object' && v !== null && typeof (v as Term).type === 'string' && 'value' in (v as object);
}

function ruleName(rule: RuleNode): string {
  const ref = rule.head?.ref;
  if (Array.isArray(ref)) return ref.map((t) => (typeof t.value === 'string' ? t.value : '[_]')).join('.');
  return rule.head?.name ?? '?';
}

/** `import input.a.b` binds `b`; `import input.a.b as x` binds `x`; `import input` binds `input`. */
function importAliases(imports: { path?: Term; alias?: string }[]): Map<string, readonly string[]> {
  const aliases = new Map<string, readonly string[]>();
  for (const imp of imports) {
    const prefix = imp.path ? inputPrefix(imp.path, new Map()) : null;
    if (!prefix || prefix.partial) continue;
    const name = imp.alias ?? (prefix.segments.length > 0 ? (prefix.segments[prefix.segments.length - 1] as string) : 'input');
    if (name !== 'input') aliases.set(name, prefix.segments);
  }
  return aliases;
}

/**
 * `x := input.a.b` / `x = input.a.b` (either side) inside a rule: x reads through to `a.b`. Resolved to a
 * fixed point so `y := x.c` follows too. Rego variables are rule-local, so one map per rule is safe: a
 * same-named variable elsewhere in the rule can only add reads, never hide one.
 */
function localAliases(rule: RuleNode, known: ReadonlyMap<string, readonly string[]>): Map<string, readonly string[]> {
  const assignments: [string, Term][] = [];
  forEachNode(rule, (node) => {
    const terms = (node as { terms?: unknown }).terms;
    if (!Array.isArray(terms) || terms.length !== 3) return;
    const [op, a, b] = terms as Term[];
    const opName = op && op.type === 'ref' && Array.isArray(op.value) ? (op.value[0] as Term | undefined)?.value : undefined;
    if (opName !== 'assign' && opName !== 'eq') return;
    if (a?.type === 'var' && b?.type === 'ref') assignments.push([a.value as string, b]);
    if (b?.type === 'var' && a?.type === 'ref') assignments.push([b.value as string, a]);
  });
  const aliases = new Map<string, readonly string[]>();
  for (let changed = true, rounds = 0; changed && rounds < 16; rounds++) {
    changed = false;
    for (const [name, ref] of assignments) {
      const p = inputPrefix(ref, new Map([...known, ...aliases]));
      if (!p || p.partial || aliases.has(name)) continue;
      aliases.set(name, p.segments);
      changed = true;
    }
  }
  return aliases;
}

/** The constant input path a ref starts with, or null when it is not rooted at input (or an alias). */
function inputPrefix(ref: Term, aliases: ReadonlyMap<string, readonly string[]>): { segments: string[]; partial: boolean } | null {
  if (ref.type !== 'ref' || !Array.isArray(ref.value)) return null;
  const [head, ...rest] = ref.value as Term[];
  if (head?.type !== 'var') return null;
  const base = head.value === 'input' ? [] : aliases.get(head.value as string);
  if (!base) return null;
  const segments = [...base];
  for (const t of rest) {
    if (t.type === 'string') segments.push(t.value as string);
    else if (t.type === 'number') segments.push(String(t.value));
    else return { segments, partial: true };
  }
  return { segments, partial: false };
}

function visit(node: unknown, ctx: Ctx): void {
  if (Array.isArray(node)) {
    for (const n of node) visit(n, ctx);
    return;
  }
  if (typeof node !== 'object' || node === null) return;
  if (isAliasDefinition(node, ctx)) return;
  if (isTerm(node)) {
    if (node.type === 'ref') return visitRef(node, ctx);
    if (node.type === 'var' && ctx.aliases.has(node.value as string)) {
      // An alias used whole (passed on, compared, iterated): everything under it is read.
      record(ctx, ctx.aliases.get(node.value as string) as readonly string[]);
      return;
    }
  }
  for (const v of Object.values(node)) visit(v, ctx);
}

/** `x := input.a` where x is a tracked alias: the reads happen where x is used, not here. */
function isAliasDefinition(node: object, ctx: Ctx): boolean {
  const terms = (node as { terms?: unknown }).terms;
  if (!Array.isArray(terms) || terms.length !== 3) return false;
  const [op, a, b] = terms as Term[];
  const opName = op && op.type === 'ref' && Array.isArray(op.value) ? (op.value[0] as Term | undefined)?.value : undefined;
  if (opName !== 'assign' && opName !== 'eq') return false;
  const [v, ref] = a?.type === 'var' ? [a, b] : [b, a];
  if (v?.type !== 'var' || ref?.type !== 'ref') return false;
  const alias = ctx.aliases.get(v.value as string);
  const prefix = inputPrefix(ref, ctx.aliases);
  return alias !== undefined && prefix !== null && !prefix.partial && prefix.segments.join('.') === alias.join('.');
}

function visitRef(ref: Term, ctx: Ctx): void {
  const parts = ref.value as Term[];
  const name = dottedName(parts);
  if (name && NONDETERMINISTIC.has(name)) ctx.out.nondeterministic.push({ name, file: ctx.file, where: ctx.where });
  const prefix = inputPrefix(ref, ctx.aliases);
  if (prefix) record(ctx, prefix.segments);
  // A var head is done; a call head (split(input.p, "?")[0]) and dynamic parts (input.a[input.b]) may read more.
  for (const [i, t] of parts.entries()) if (i > 0 || t.type !== 'var') visit(t, ctx);
}

function dottedName(parts: Term[]): string | null {
  if (parts.length !== 2 || parts[0]?.type !== 'var' || parts[1]?.type !== 'string') return null;
  return `${parts[0].value as string}.${parts[1].value as string}`;
}

function record(ctx: Ctx, segments: readonly string[]): void {
  const read: InputRead = { segments, file: ctx.file, where: ctx.where };
  ctx.out.inputs.push(read);
}

function forEachNode(node: unknown, fn: (n: object) => void): void {
  if (Array.isArray(node)) {
    for (const n of node) forEachNode(n, fn);
    return;
  }
  if (typeof node !== 'object' || node === null) return;
  fn(node);
  for (const v of Object.values(node)) forEachNode(v, fn);
}

export type { InputRead, NondeterministicCall };
