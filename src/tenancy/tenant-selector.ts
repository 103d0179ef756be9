import { lowerASCII } from '../ascii';
import type { TenantSelector } from '../config/sections/tenants';
import type { CheckRequest } from '../request/check-request';
import type { SPIFFEInput } from '../request/input-document';

/**
 * Finds the tenant a request names, by the one configured selector. Exact values are a Map lookup; SPIFFE ID
 * prefixes are tried from the longest (at most one lookup per path segment of the caller's ID).
 */
export class TenantSelectorIndex<T> {
  private readonly byValue = new Map<string, T>();

  constructor(
    private readonly selector: TenantSelector,
    entries: readonly { match: readonly string[]; tenant: T }[],
  ) {
    for (const e of entries) for (const v of e.match) this.byValue.set(normalizeSelectorValue(selector, v), e.tenant);
  }

  find(message: CheckRequest, spiffe: SPIFFEInput | null): T | undefined {
    switch (this.selector.from) {
      case 'contextExtension': {
        const value = message.attributes?.contextExtensions?.[this.selector.key];
        return value === undefined ? undefined : this.byValue.get(value);
      }
      case 'trustDomain':
        return spiffe ? this.byValue.get(spiffe.trust_domain) : undefined;
      case 'spiffeIDPrefix':
        return spiffe ? this.longestPrefix(spiffe.id) : undefined;
      case 'authority': {
        const host = message.attributes?.request?.http?.host ?? message.attributes?.request?.http?.headers?.[':authority'];
        return host === undefined ? undefined : this.byValue.get(normalizeSelectorValue(this.selector, host));
      }
    }
  }

  /** `spiffe://td/a/b` matches a configured `spiffe://td/a/b` or `spiffe://td/a` (segment boundary), longest first. */
  private longestPrefix(id: string): T | undefined {
    let candidate = id.replace(/\/+$/, '');
    const root = candidate.indexOf('/', 'spiffe://'.length);
    while (candidate.length > 0) {
      const hit = this.byValue.get(candidate);
      if (hit !== undefined) return hit;
      const cut = candidate.lastIndexOf('/');
      if (cut < root || root === -1) return undefined;
      candidate = candidate.slice(0, cut);
    }
    return undefined;
  }
}

/**
 * A selector value as it is looked up: an authority lowercased without its port, a SPIFFE ID prefix without
 * trailing slashes. The config check compares values in this form, so two tenants can never share one.
 * Only A-Z are lowercased (RFC 3986 §3.2.2, and Envoy's domain matching): Unicode case folding would read
 * the Kelvin sign "\u212A" as "k", and route "\u212Aey.example" to the tenant of "key.example", a host
 * Envoy does not route it to.
 */
export function normalizeSelectorValue(selector: TenantSelector, v: string): string {
  if (selector.from === 'authority') return lowerASCII(v).replace(/:\d+$/, '');
  if (selector.from === 'spiffeIDPrefix') return v.replace(/\/+$/, '');
  return v;
}
