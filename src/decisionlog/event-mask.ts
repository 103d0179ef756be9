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
  pointer: string;
  segments: string[];
  replaceWith?: string;
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
  private readonly masks: CompiledMask[];

  constructor(rules: readonly (string | MaskRule)[]) {
    this.masks = rules.map((r) => compile(typeof r === 'string' ? { path: r } : r));
  }

  apply<T extends object>(event: T): { event: T; erased: string[]; masked: string[] } {
    let out = event as Record<string, unknown>;
    const erased: string[] = [];
    const masked: string[] = [];
    for (const m of this.masks) {
      const next = maskAt(out, m.segments, 0, m.replaceWith);
      if (next === out) continue;
      out = next;
      (m.replaceWith === undefined ? erased : masked).push(m.pointer);
    }
    return { event: out as T, erased, masked };
  }
}

function compile(rule: MaskRule): CompiledMask {
  const p = rule.path;
  const segments = p.startsWith('/')
    ? p
        .slice(1)
        .split('/')
        .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    : p.split('.');
  if (segments.length === 0 || segments.some((s) => s === '')) throw new TypeError(`mask path "${p}" is empty or has an empty segment`);
  const lower = segments.map((s) => s.toLowerCase());
  return { pointer: `/${lower.join('/')}`, segments: lower, ...(rule.replaceWith !== undefined ? { replaceWith: rule.replaceWith } : {}) };
}

/** Returns `node` itself when nothing matched; otherwise a copy with the path removed or replaced. */
function maskAt(
  node: Record<string, unknown>,
  segs: readonly string[],
  i: number,
  replaceWith: string | undefined,
): Record<string, unknown> {
  const key = findKey(node, segs[i] as string);
  if (key === undefined) return node;
  if (i === segs.length - 1) {
    const copy = { ...node };
    if (replaceWith === undefined) delete copy[key];
    else copy[key] = replaceWith;
    return copy;
  }
  const child = node[key];
  if (typeof child !== 'object' || child === null || Array.isArray(child)) return node;
  const masked = maskAt(child as Record<string, unknown>, segs, i + 1, replaceWith);
  return masked === child ? node : { ...node, [key]: masked };
}

function findKey(node: Record<string, unknown>, lowerName: string): string | undefined {
  if (Object.prototype.hasOwnProperty.call(node, lowerName)) return lowerName;
  for (const k of Object.keys(node)) if (k.toLowerCase() === lowerName) return k;
  return undefined;
}
