import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { describe, expect, it, vi } from 'vitest';
import { cedarBundleFromFiles } from '../../../src/policy/cedar-bundle';
import { CEDAR_NO_MATCH, CedarEngine } from '../../../src/policy/engine-cedar';
import type { InputDocument } from '../../../src/request/input-document';
import { codeOf, codeOfAsync } from '../../helpers/error-code';

const ENGINE_OPTIONS = { entrypoint: '', maxMemoryPages: 0, recycleMemoryPages: 0 };

const DIR = join(__dirname, '../../../policies/cedar-default');
const SCHEMA = readFileSync(join(DIR, 'schema.cedarschema'), 'utf8');

function input(o: {
  method?: string;
  path?: string;
  host?: string;
  id?: string;
  headers?: Record<string, string>;
  addr?: string;
}): InputDocument {
  const doc: InputDocument = {
    attributes: {
      source: { address: { socketAddress: { address: o.addr ?? '10.0.0.7', portValue: 5000 } } },
      request: {
        http: {
          method: o.method ?? 'GET',
          path: o.path ?? '/',
          host: o.host ?? 'api.example.org',
          scheme: 'https',
          protocol: 'HTTP/2',
          headers: { 'user-agent': 'test', ...(o.headers ?? {}) },
        },
      },
    },
    parsed_path: [],
    parsed_query: {},
    parsed_body: null,
    truncated_body: false,
    version: { ext_authz: 'v3', encoding: 'protojson' },
  };
  if (o.id !== undefined) {
    const u = new URL(o.id);
    doc.spiffe = { id: o.id, trust_domain: u.host, path: u.pathname, svid_type: 'jwt', expires_at: '2030-01-01T00:00:00Z' };
  }
  return doc;
}

function engine(policies: string, entities: unknown[] = [], metadata: Record<string, unknown> = {}, maxEntities = 64): CedarEngine {
  const bundle = cedarBundleFromFiles(
    { 'policies.cedar': policies, 'schema.cedarschema': SCHEMA, 'entities.json': JSON.stringify(entities) },
    metadata,
  );
  return CedarEngine.load(bundle, { reasonsHeader: 'x-cedar-policies', maxEntitiesPerRequest: maxEntities });
}

const FRONTEND = 'spiffe://example.org/ns/default/sa/frontend';

describe('Cedar mapping: ext_authz input → principal, action, resource, context', () => {
  // Each case is one permit whose condition reads one mapped field; the request must satisfy it.
  const table: { name: string; policy: string; req: Parameters<typeof input>[0]; allowed: boolean }[] = [
    {
      name: 'principal is the verified SPIFFE ID',
      policy: `permit(principal == Verdict::Workload::"${FRONTEND}", action, resource);`,
      req: { id: FRONTEND },
      allowed: true,
    },
    {
      name: 'no SVID → Anonymous::"anonymous"',
      policy: 'permit(principal == Verdict::Anonymous::"anonymous", action, resource);',
      req: {},
      allowed: true,
    },
    { name: 'anonymous is not a Workload', policy: 'permit(principal is Verdict::Workload, action, resource);', req: {}, allowed: false },
    {
      name: 'principal attrs from the SVID',
      policy:
        'permit(principal is Verdict::Workload, action, resource) when { principal.trustDomain == "example.org" && principal.path == "/ns/default/sa/frontend" && principal.svidType == "jwt" };',
      req: { id: FRONTEND },
      allowed: true,
    },
    {
      name: 'principal is in its trust domain',
      policy: 'permit(principal in Verdict::TrustDomain::"example.org", action, resource);',
      req: { id: FRONTEND },
      allowed: true,
    },
    {
      name: 'other trust domain is not',
      policy: 'permit(principal in Verdict::TrustDomain::"example.org", action, resource);',
      req: { id: 'spiffe://evil.org/x' },
      allowed: false,
    },
    {
      name: 'action from the method',
      policy: 'permit(principal, action == Verdict::Action::"DELETE", resource);',
      req: { method: 'DELETE' },
      allowed: true,
    },
    {
      name: 'undeclared method → OTHER',
      policy: 'permit(principal, action == Verdict::Action::"OTHER", resource);',
      req: { method: 'PURGE' },
      allowed: true,
    },
    {
      name: 'resource id is host + path',
      policy: 'permit(principal, action, resource == Verdict::Route::"api.example.org/v1/x");',
      req: { path: '/v1/x?q=1' },
      allowed: true,
    },
    {
      name: 'resource path drops query and fragment',
      policy: 'permit(principal, action, resource) when { resource.path == "/v1/x" && context.query == "q=1" };',
      req: { path: '/v1/x?q=1#f' },
      allowed: true,
    },
    {
      name: 'resource is in its host',
      policy: 'permit(principal, action, resource in Verdict::Host::"api.example.org");',
      req: {},
      allowed: true,
    },
    {
      name: 'headers as tags',
      policy:
        'permit(principal, action, resource) when { context.headers.hasTag("x-token") && context.headers.getTag("x-token") == "good" };',
      req: { headers: { 'X-Token': 'good' } },
      allowed: true,
    },
    {
      name: 'missing header is no tag',
      policy: 'permit(principal, action, resource) when { context.headers.hasTag("x-token") };',
      req: {},
      allowed: false,
    },
    {
      name: 'context source address and authenticated',
      policy:
        'permit(principal, action, resource) when { context.sourceAddress == "10.1.2.3" && context.authenticated && context.svidType == "jwt" };',
      req: { id: FRONTEND, addr: '10.1.2.3' },
      allowed: true,
    },
    {
      name: 'context method and scheme',
      policy:
        'permit(principal, action, resource) when { context.method == "PATCH" && context.scheme == "https" && context.protocol == "HTTP/2" };',
      req: { method: 'PATCH' },
      allowed: true,
    },
  ];
  for (const c of table) {
    it(c.name, () => {
      expect(engine(c.policy).evaluate(input(c.req)).allowed).toBe(c.allowed);
    });
  }

  it('takes group memberships of a workload from entities.json, and path prefixes', () => {
    const entities = [
      { uid: { type: 'Verdict::Group', id: 'billing' }, attrs: {}, parents: [{ type: 'Verdict::Group', id: 'finance' }] },
      { uid: { type: 'Verdict::Group', id: 'finance' }, attrs: {}, parents: [] },
      {
        uid: { type: 'Verdict::Workload', id: 'spiffe://example.org/pay' },
        attrs: { spiffeId: 'x', trustDomain: 'x', path: 'x', svidType: 'x' },
        parents: [{ type: 'Verdict::Group', id: 'billing' }],
      },
      { uid: { type: 'Verdict::PathPrefix', id: '/api' }, attrs: {}, parents: [] },
    ];
    const e = engine(
      '@id("finance-api") permit(principal in Verdict::Group::"finance", action, resource in Verdict::PathPrefix::"/api");',
      entities,
    );
    const ok = e.evaluate(input({ id: 'spiffe://example.org/pay', path: '/api/invoices' }));
    expect(ok).toMatchObject({ allowed: true, reasons: ['finance-api'], headers: [['x-cedar-policies', 'finance-api']] });
    expect(e.evaluate(input({ id: 'spiffe://example.org/other', path: '/api/invoices' })).allowed).toBe(false);
    expect(e.evaluate(input({ id: 'spiffe://example.org/pay', path: '/apix' })).allowed).toBe(false);
  });

  it('maps methods through the manifest action mapping', () => {
    const e = engine('permit(principal, action == Verdict::Action::"GET", resource);', [], { cedar: { actions: { QUERY: 'GET' } } });
    expect(e.evaluate(input({ method: 'QUERY' })).allowed).toBe(true);
  });

  it('denies (ERR_POLICY_EVAL) a request that reaches more entities than the bound', () => {
    const groups = Array.from({ length: 20 }, (_, i) => ({
      uid: { type: 'Verdict::Group', id: `g${i}` },
      attrs: {},
      parents: i > 0 ? [{ type: 'Verdict::Group', id: `g${i - 1}` }] : [],
    }));
    const w = {
      uid: { type: 'Verdict::Workload', id: FRONTEND },
      attrs: { spiffeId: 'x', trustDomain: 'x', path: 'x', svidType: 'x' },
      parents: [{ type: 'Verdict::Group', id: 'g19' }],
    };
    const e = engine('permit(principal, action, resource);', [...groups, w], {}, 10);
    expect(codeOf(() => e.evaluate(input({ id: FRONTEND })))).toBe('ERR_POLICY_EVAL');
  });
});

describe('Cedar decisions', () => {
  it('forbid overrides permit, and the reasons name the forbid', () => {
    const e = engine(
      '@id("allow-all") permit(principal, action, resource);\n@id("no-delete") forbid(principal, action == Verdict::Action::"DELETE", resource);',
    );
    expect(e.evaluate(input({ method: 'GET' }))).toMatchObject({ allowed: true, reasons: ['allow-all'] });
    expect(e.evaluate(input({ method: 'DELETE' }))).toMatchObject({
      allowed: false,
      reasons: ['no-delete'],
      headers: [['x-cedar-policies', 'no-delete']],
    });
  });

  it('no matching policy is a deny with reason no_policy_matched', () => {
    const e = engine('@id("only-get") permit(principal, action == Verdict::Action::"GET", resource);');
    expect(e.evaluate(input({ method: 'POST' }))).toMatchObject({ allowed: false, reasons: [CEDAR_NO_MATCH] });
  });

  it('reports evaluation errors of a policy in the reasons (the policy is skipped)', () => {
    // Long overflow passes strict validation and fails only at evaluation (Cedar: arithmetic is checked).
    const e = engine(
      '@id("ok") permit(principal, action, resource);\n@id("overflow") forbid(principal, action, resource) when { 9223372036854775807 + 1 > 0 };',
    );
    const r = e.evaluate(input({}));
    expect(r.allowed).toBe(true);
    expect(r.reasons[0]).toBe('ok');
    expect(r.reasons.some((x) => x.startsWith('error:overflow:'))).toBe(true);
  });
});

describe('Cedar bundle load', () => {
  const cases: { name: string; files: Record<string, string>; code: string }[] = [
    {
      name: 'policy that does not validate (unknown attribute) is refused',
      files: { 'policies.cedar': 'permit(principal, action, resource) when { resource.owner == "x" };', 'schema.cedarschema': SCHEMA },
      code: 'ERR_BUNDLE_SCHEMA',
    },
    {
      name: 'policy with a type error is refused',
      files: { 'policies.cedar': 'permit(principal, action, resource) when { resource.path > 3 };', 'schema.cedarschema': SCHEMA },
      code: 'ERR_BUNDLE_SCHEMA',
    },
    { name: 'no schema is refused', files: { 'policies.cedar': 'permit(principal, action, resource);' }, code: 'ERR_BUNDLE_SCHEMA' },
    {
      name: 'schema without verdict namespace is refused',
      files: {
        'policies.cedar': 'permit(principal, action, resource);',
        'schema.cedarschema': 'entity User; action "view" appliesTo { principal: User, resource: User };',
      },
      code: 'ERR_BUNDLE_SCHEMA',
    },
    {
      name: 'syntax error is refused',
      files: { 'policies.cedar': 'permit(principal, action, resource', 'schema.cedarschema': SCHEMA },
      code: 'ERR_BUNDLE_INVALID',
    },
    {
      name: 'duplicate @id is refused',
      files: {
        'policies.cedar': '@id("a") permit(principal, action, resource);\n@id("a") forbid(principal, action, resource);',
        'schema.cedarschema': SCHEMA,
      },
      code: 'ERR_BUNDLE_INVALID',
    },
    {
      name: 'entities not matching the schema are refused',
      files: {
        'policies.cedar': 'permit(principal, action, resource);',
        'schema.cedarschema': SCHEMA,
        'entities.json': '[{"uid":{"type":"Verdict::Nope","id":"x"},"attrs":{},"parents":[]}]',
      },
      code: 'ERR_BUNDLE_SCHEMA',
    },
    {
      name: 'entities.json that is not an array is refused',
      files: { 'policies.cedar': 'permit(principal, action, resource);', 'schema.cedarschema': SCHEMA, 'entities.json': '{}' },
      code: 'ERR_BUNDLE_INVALID',
    },
    {
      name: 'schema whose Workload shape differs from the request model is refused',
      files: {
        'policies.cedar': 'permit(principal, action, resource);',
        'schema.cedarschema': SCHEMA.replace('svidType: String,\n  };', 'svidType: String,\n    team: String,\n  };'),
      },
      code: 'ERR_BUNDLE_SCHEMA',
    },
  ];
  for (const c of cases) {
    it(`${c.name}, with the same code on this thread and by the server's off-loop check`, async () => {
      expect(codeOf(() => CedarEngine.load(cedarBundleFromFiles(c.files)))).toBe(c.code);
      expect(await codeOfAsync(CedarEngine.factory()(cedarBundleFromFiles(c.files), ENGINE_OPTIONS))).toBe(c.code);
    });
  }
});

describe('Cedar bundle check off the event loop (the server path)', () => {
  /** n more policies, each permitting one path; one in three without an @id. */
  function manyPolicies(n: number): string {
    const out = [readFileSync(join(DIR, 'policies.cedar'), 'utf8')];
    for (let i = 0; i < n; i++) {
      const id = i % 3 === 0 ? '' : `@id("svc-${i}")\n`;
      out.push(`${id}permit (principal, action == Verdict::Action::"GET", resource) when { resource.path == "/svc/${i}" };`);
    }
    return out.join('\n');
  }

  it('validates in the worker (never on this thread) and names decisions by @id, else policyN as CedarEngine.load does', async () => {
    const cedar = createRequire(__filename)('@cedar-policy/cedar-wasm/nodejs') as Record<string, unknown>;
    const validate = vi.spyOn(cedar as { validate: () => unknown }, 'validate');
    try {
      const bundle = cedarBundleFromFiles({ 'policies.cedar': manyPolicies(30), 'schema.cedarschema': SCHEMA });
      const e = await CedarEngine.factory({ reasonsHeader: 'x-cedar-policies', maxEntitiesPerRequest: 64 })(bundle, ENGINE_OPTIONS);
      expect(validate).not.toHaveBeenCalled();
      expect(e.evaluate(input({ path: '/svc/7' }))).toMatchObject({ allowed: true, reasons: ['svc-7'] });
      // svc 9 has no @id: it is named policyN, the same on both paths.
      const unnamed = await e.evaluate(input({ path: '/svc/9' }));
      expect(unnamed.allowed).toBe(true);
      expect(unnamed.reasons).toEqual([expect.stringMatching(/^policy\d+$/)]);
      expect(CedarEngine.load(bundle).evaluate(input({ path: '/svc/9' })).reasons).toEqual(unnamed.reasons);
    } finally {
      validate.mockRestore();
    }
  });

  it('hands the entities over in slices: a membership defined in the last of several slices decides', async () => {
    // 2,500 workloads (the worker sends 1,000 per message); only the last one is in the finance group.
    const workload = (i: number, groups: string[]) => ({
      uid: { type: 'Verdict::Workload', id: `spiffe://example.org/w${i}` },
      attrs: { spiffeId: 'x', trustDomain: 'x', path: 'x', svidType: 'x' },
      parents: groups.map((id) => ({ type: 'Verdict::Group', id })),
    });
    const entities = [
      { uid: { type: 'Verdict::Group', id: 'finance' }, attrs: {}, parents: [] },
      ...Array.from({ length: 2500 }, (_, i) => workload(i, i === 2499 ? ['finance'] : [])),
    ];
    const bundle = cedarBundleFromFiles({
      'policies.cedar': '@id("finance") permit(principal in Verdict::Group::"finance", action, resource);',
      'schema.cedarschema': SCHEMA,
      'entities.json': JSON.stringify(entities),
    });
    const e = await CedarEngine.factory()(bundle, ENGINE_OPTIONS);
    expect(e.evaluate(input({ id: 'spiffe://example.org/w2499' }))).toMatchObject({ allowed: true, reasons: ['finance'] });
    expect(await e.evaluate(input({ id: 'spiffe://example.org/w0' }))).toMatchObject({ allowed: false });
  });

  it('refuses a bundle whose check outlasts the load deadline (ERR_BUNDLE_LOAD_TIMEOUT)', async () => {
    // 2,000 policies take ~1.8 s to check here; the deadline is 20 ms.
    const bundle = cedarBundleFromFiles({ 'policies.cedar': manyPolicies(2000), 'schema.cedarschema': SCHEMA });
    expect(await codeOfAsync(CedarEngine.factory()(bundle, { ...ENGINE_OPTIONS, loadTimeoutMs: 20 }))).toBe('ERR_BUNDLE_LOAD_TIMEOUT');
  });
});
