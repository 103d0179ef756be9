/**
 * Masking by path, applied to every event before it is written anywhere: a matched field is removed (and
 * its JSON pointer listed in `erased`, as OPA does) or replaced (listed in `masked`). Paths are JSON pointers
 * into the event (`/input/attributes/request/http/headers/authorization`) or the same in dotted form.
 * Field names match case-insensitively (HTTP header names). Copy-on-write: the record the engine and the
 * observers saw is never changed.
 */
export interface MaskRule {
  path: string;
  /** Replace the value with this instead of removing it. */
  replaceWith?: string;
}

interface CompiledMask {
  index: number;
  pointer: string;
  segments: string[];
  replaceWith?: string;
}

/** The rules as a trie of lowercase field names, so one walk serves every rule that shares a prefix. */
interface MaskNode {
  children: Map<string, MaskNode>;
  rule?: CompiledMask;
}

export const DEFAULT_MASKS: readonly string[] = Object.freeze([
  '/input/attributes/request/http/headers/authorization',
  '/input/attributes/request/http/headers/proxy-authorization',
  '/input/attributes/request/http/headers/cookie',
  '/input/attributes/request/http/headers/set-cookie',
  '/input/attributes/request/http/headers/x-forwarded-client-cert',
  // header_map repeats every header as a list, secrets included: dropped whole.
  '/input/attributes/request/http/headerMap',
  // The raw client certificate (Envoy's include_peer_certificate).
  '/input/attributes/source/certificate',
  '/result/headers/authorization',
]);

export class EventMask {
  private readonly root: MaskNode = { children: new Map() };

  constructor(rules: readonly (string | MaskRule)[]) {
    rules.forEach((r, index) => this.insert(compile(typeof r === 'string' ? { path: r } : r, index)));
  }

  apply<T extends object>(event: T): { event: T; erased: string[]; masked: string[] } {
    const hits: CompiledMask[] = [];
    const out = maskNode(event as Record<string, unknown>, this.root, hits);
    hits.sort((a, b) => a.index - b.index);
    const erased = hits.filter((h) => h.replaceWith === undefined).map((h) => h.pointer);
    const masked = hits.filter((h) => h.replaceWith !== undefined).map((h) => h.pointer);
    return { event: out as T, erased, masked };
  }

  private insert(rule: CompiledMask): void {
    let node = this.root;
    for (const seg of rule.segments) {
      let next = node.children.get(seg);
      if (!next) node.children.set(seg, (next = { children: new Map() }));
      node = next;
    }
    node.rule ??= rule;
  }
}

function compile(rule: MaskRule, index: number): CompiledMask {
  const p = rule.path;
  const segments = p.startsWith('/')
    ? p
        .slice(1)
        .split('/')
        .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    : p.split('.');
  if (segments.length === 0 || segments.some((s) => s === '')) throw new TypeError(`mask path "${p}" is empty or has an empty segment`);
  const lower = segments.map((s) => s.toLowerCase());
  return {
    index,
    pointer: `/${lower.join('/')}`,
    segments: lower,
    ...(rule.replaceWith !== undefined ? { replaceWith: rule.replaceWith } : {}),
  };
}

/**
 * Returns `obj` itself when nothing under it matched; otherwise a copy with the matched fields removed or
 * replaced (copy-on-write: only the objects on a matched path are copied).
 */
function maskNode(obj: Record<string, unknown>, trie: MaskNode, hits: CompiledMask[]): Record<string, unknown> {
  let out = obj;
  // Field names match case-insensitively, and every casing of a name is masked (a secret must not slip
  // through as "Authorization" beside "authorization").
  const byLowerName = new Map<string, string[]>();
  for (const k of Object.keys(obj)) {
    const lower = k.toLowerCase();
    const list = byLowerName.get(lower);
    if (list) list.push(k);
    else byLowerName.set(lower, [k]);
  }
  for (const [name, child] of trie.children) {
    for (const key of byLowerName.get(name) ?? []) {
      if (child.rule) {
        if (out === obj) out = { ...obj };
        if (child.rule.replaceWith === undefined) delete out[key];
        else out[key] = child.rule.replaceWith;
        if (!hits.includes(child.rule)) hits.push(child.rule);
        continue;
      }
      const value = obj[key];
      if (typeof value !== 'object' || value === null || Array.isArray(value)) continue;
      const masked = maskNode(value as Record<string, unknown>, child, hits);
      if (masked === value) continue;
      if (out === obj) out = { ...obj };
      out[key] = masked;
    }
  }
  return out;
}
