import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load-config';
import type { TenantSelector } from '../../../src/config/sections/tenants';
import type { CheckRequest } from '../../../src/request/check-request';
import type { SPIFFEInput } from '../../../src/request/input-document';
import { TenantSelectorIndex } from '../../../src/tenancy/tenant-selector';
import { codeOf } from '../../helpers/error-code';

function spiffe(id: string): SPIFFEInput {
  const td = id.slice('spiffe://'.length).split('/')[0]!;
  return { id, trust_domain: td, path: id.slice(`spiffe://${td}`.length), svid_type: 'x509', expires_at: '' };
}

function request(opts: { ext?: Record<string, string>; host?: string }): CheckRequest {
  return {
    attributes: { contextExtensions: opts.ext ?? {}, request: { http: { ...(opts.host ? { host: opts.host } : {}) } } },
  } as CheckRequest;
}

describe('TenantSelectorIndex', () => {
  const cases: {
    name: string;
    selector: TenantSelector;
    match: Record<string, string[]>;
    req: CheckRequest;
    id?: string;
    want: string | undefined;
  }[] = [
    {
      name: 'context extension value',
      selector: { from: 'contextExtension', key: 'tenant' },
      match: { a: ['acme'] },
      req: request({ ext: { tenant: 'acme' } }),
      want: 'a',
    },
    {
      name: 'context extension absent',
      selector: { from: 'contextExtension', key: 'tenant' },
      match: { a: ['acme'] },
      req: request({}),
      want: undefined,
    },
    {
      name: 'another extension key is not the selector',
      selector: { from: 'contextExtension', key: 'tenant' },
      match: { a: ['acme'] },
      req: request({ ext: { route: 'acme' } }),
      want: undefined,
    },
    {
      name: 'authority, case and port ignored',
      selector: { from: 'authority' },
      match: { a: ['api.acme.example'] },
      req: request({ host: 'API.Acme.Example:8443' }),
      want: 'a',
    },
    {
      name: 'trust domain',
      selector: { from: 'trustDomain' },
      match: { a: ['acme.org'], b: ['beta.org'] },
      req: request({}),
      id: 'spiffe://beta.org/ns/x',
      want: 'b',
    },
    {
      name: 'trust domain without a verified SVID',
      selector: { from: 'trustDomain' },
      match: { a: ['acme.org'] },
      req: request({}),
      want: undefined,
    },
    {
      name: 'longest SPIFFE ID prefix wins',
      selector: { from: 'spiffeIDPrefix' },
      match: { wide: ['spiffe://m.org/tenants'], narrow: ['spiffe://m.org/tenants/b/'] },
      req: request({}),
      id: 'spiffe://m.org/tenants/b/svc',
      want: 'narrow',
    },
    {
      name: 'prefix only at a segment boundary',
      selector: { from: 'spiffeIDPrefix' },
      match: { a: ['spiffe://m.org/tenants/a'] },
      req: request({}),
      id: 'spiffe://m.org/tenants/ab/svc',
      want: undefined,
    },
    {
      name: 'whole trust domain as a prefix',
      selector: { from: 'spiffeIDPrefix' },
      match: { a: ['spiffe://m.org'] },
      req: request({}),
      id: 'spiffe://m.org/x/y',
      want: 'a',
    },
  ];
  it.each(cases)('$name', ({ selector, match, req, id, want }) => {
    const index = new TenantSelectorIndex(
      selector,
      Object.entries(match).map(([tenant, m]) => ({ match: m, tenant })),
    );
    expect(index.find(req, id ? spiffe(id) : null)).toBe(want);
  });
});

describe('tenants config', () => {
  const tenant = (name: string, match: string[]) => ({ name, match, bundles: { source: { type: 'file', path: '/b.tar.gz' } } });
  it('is off by default', () => {
    expect(validateConfig({}).tenants).toBeNull();
    expect(validateConfig({}).policy.shadow).toBeNull();
  });
  it.each([
    {
      name: 'more tenants than maxTenants',
      doc: { selector: { from: 'authority' }, maxTenants: 1, list: [tenant('a', ['x']), tenant('b', ['y'])] },
    },
    { name: 'a value naming two tenants', doc: { selector: { from: 'authority' }, list: [tenant('a', ['x']), tenant('b', ['x'])] } },
    // Values are looked up normalised (authority lowercased, port dropped; prefix without trailing slash):
    // these pairs were accepted, and the later tenant silently took the earlier one's requests.
    {
      name: 'two authorities that differ only in case and port',
      doc: { selector: { from: 'authority' }, list: [tenant('a', ['API.acme.example']), tenant('b', ['api.acme.example:443'])] },
    },
    {
      name: 'two SPIFFE ID prefixes that differ only in a trailing slash',
      doc: { selector: { from: 'spiffeIDPrefix' }, list: [tenant('a', ['spiffe://m.org/t/a']), tenant('b', ['spiffe://m.org/t/a/'])] },
    },
    { name: 'a tenant without a source', doc: { selector: { from: 'authority' }, list: [{ name: 'a', match: ['x'], bundles: {} }] } },
    { name: 'a name unfit for a label', doc: { selector: { from: 'authority' }, list: [tenant('A b', ['x'])] } },
  ])('refuses $name with ERR_CONFIG', ({ doc }) => {
    expect(codeOf(() => validateConfig({ tenants: doc }))).toBe('ERR_CONFIG');
  });
});

describe('TenantSelectorIndex with hostile selector values', () => {
  const names = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf'];
  const index = (selector: TenantSelector, match: string[]) => new TenantSelectorIndex(selector, [{ match, tenant: 'a' }]);

  it.each(names)('a context extension valued "%s" names no tenant unless one is configured so', (name) => {
    const ext = Object.defineProperty({}, 'tenant', { value: name, enumerable: true });
    expect(index({ from: 'contextExtension', key: 'tenant' }, ['acme']).find(request({ ext }), null)).toBeUndefined();
    expect(index({ from: 'contextExtension', key: 'tenant' }, [name]).find(request({ ext }), null)).toBe('a');
  });

  it.each(names)('a selector key "%s" that the request lacks names no tenant (no inherited value)', (key) => {
    expect(index({ from: 'contextExtension', key }, ['acme']).find(request({ ext: { other: 'acme' } }), null)).toBeUndefined();
  });

  it('an authority of 1 MiB names no tenant', () => {
    expect(index({ from: 'authority' }, ['acme.example']).find(request({ host: `${'a'.repeat(1 << 20)}:1` }), null)).toBeUndefined();
  });

  it('finds each of 1,000 tenants with 1,000 values each', () => {
    const entries = Array.from({ length: 1000 }, (_, t) => ({
      match: Array.from({ length: 1000 }, (_, v) => `t${t}-v${v}.example`),
      tenant: `t${t}`,
    }));
    const idx = new TenantSelectorIndex({ from: 'authority' }, entries);
    expect(idx.find(request({ host: 'T999-v999.example:8443' }), null)).toBe('t999');
    expect(idx.find(request({ host: 't1000-v0.example' }), null)).toBeUndefined();
  });
});
