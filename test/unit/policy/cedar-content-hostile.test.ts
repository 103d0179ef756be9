import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { VerdictError } from '../../../src/errors';
import { cedarBundleFromFiles } from '../../../src/policy/cedar-bundle';
import { CedarEntityStore } from '../../../src/policy/cedar-entity-store';
import { CedarEngine } from '../../../src/policy/engine-cedar';
import type { PolicyEngine } from '../../../src/policy/policy-engine';
import type { InputDocument } from '../../../src/request/input-document';
import { codeOf, codeOfAsync } from '../../helpers/error-code';

// What a Cedar bundle's *content* can do once it is past the reader and the signature: every bundle here is
// built at run time from text a hostile (or careless) author could sign.

const SCHEMA = readFileSync(join(__dirname, '../../../policies/cedar-default/schema.cedarschema'), 'utf8');
const SETTINGS = { reasonsHeader: 'x-cedar-policies', maxEntitiesPerRequest: 64 };
const OPTIONS = { entrypoint: '', maxMemoryPages: 0, recycleMemoryPages: 0, loadTimeoutMs: 120_000 };
const WORKLOAD = 'spiffe://td.example/w';

function input(path = '/', id?: string): InputDocument {
  const doc: InputDocument = {
    attributes: { request: { http: { method: 'GET', path, host: 'api.example', headers: {} } } },
    parsed_path: [],
    parsed_query: {},
    parsed_body: null,
    truncated_body: false,
    version: { ext_authz: 'v3', encoding: 'protojson' },
  };
  if (id !== undefined) doc.spiffe = { id, trust_domain: 'td.example', path: '/w', svid_type: 'x509', expires_at: '' };
  return doc;
}

function bundle(policies: string, more: Record<string, string> = {}) {
  return cedarBundleFromFiles({ 'policies.cedar': policies, 'schema.cedarschema': SCHEMA, ...more });
}

/** Both ways a Cedar bundle is loaded: on this thread (the CLI) and checked in a worker (the server). */
const LOADERS: { name: string; load(policies: string, more?: Record<string, string>): Promise<PolicyEngine> }[] = [
  { name: 'on this thread', load: async (p, more) => CedarEngine.load(bundle(p, more), SETTINGS) },
  { name: 'checked off the event loop', load: (p, more) => CedarEngine.factory(SETTINGS)(bundle(p, more), OPTIONS) },
];

describe.each(LOADERS)('Cedar policy ids named like Object.prototype members ($name)', ({ load }) => {
  // The set is keyed by @id: on a plain object `named["__proto__"] = text` sets the prototype and drops the
  // policy, so a forbid named "__proto__" vanished and the permit decided.
  it.each(['__proto__', 'constructor', 'hasOwnProperty', 'toString'])('a forbid with @id("%s") still forbids', async (id) => {
    const engine = await load(`@id("open") permit(principal, action, resource);\n@id("${id}") forbid(principal, action, resource);`);
    const result = await engine.evaluate(input());
    expect(result.allowed).toBe(false);
    expect(result.reasons).toEqual([id]);
  });
});

describe('Cedar policy ids in the reasons header', () => {
  it('refuses at load a determining @id that is no header value (CR LF), ERR_BUNDLE_INVALID', async () => {
    const policies = '@id("ok\\r\\nx-injected: 1") permit(principal, action, resource);';
    await expect(CedarEngine.factory(SETTINGS)(bundle(policies), OPTIONS)).rejects.toMatchObject({
      code: 'ERR_BUNDLE_INVALID',
      message: expect.stringContaining('invalid header value'),
    });
  });

  it('denies ERR_POLICY_RESULT a request whose determining @id is longer than a header may be, and serves the rest', async () => {
    const long = 'p'.repeat(20_000);
    const policies = `@id("root") permit(principal, action, resource) when { resource.path == "/" };
@id("${long}") permit(principal, action, resource) when { resource.path == "/long" };`;
    const engine = await CedarEngine.factory(SETTINGS)(bundle(policies), OPTIONS);
    expect(await codeOfAsync(() => engine.evaluate(input('/long')))).toBe('ERR_POLICY_RESULT');
    expect((await engine.evaluate(input('/'))).headers).toEqual([['x-cedar-policies', 'root']]);
  });
});

describe('Cedar policy sets too large or too wrong to report in full', () => {
  it('refuses more than 10,000 policies, ERR_BUNDLE_TOO_LARGE, before parsing each one', async () => {
    // The event loop preparses the whole set in one call (3.4 s for 30,000 here): the count is the bound.
    const policies = Array.from({ length: 10_001 }, (_, i) => `@id("p${i}") permit(principal, action, resource);`).join('\n');
    const refused = CedarEngine.factory(SETTINGS)(bundle(policies), OPTIONS);
    await expect(refused).rejects.toMatchObject({ code: 'ERR_BUNDLE_TOO_LARGE', message: expect.stringContaining('10001 policies') });
  });

  it.each(LOADERS)('refuses a schema of more than 64 Ki characters, ERR_BUNDLE_TOO_LARGE ($name)', async ({ load }) => {
    // The event loop preparses the schema in one call (and read its JSON form too): ~3 ms a KiB here.
    const extra = Array.from({ length: 2000 }, (_, i) => `  entity Extra${i} = { a${i}: String, b: Long };`).join('\n');
    const schema = SCHEMA.replace('namespace Verdict {', `namespace Verdict {\n${extra}`);
    expect(schema.length).toBeGreaterThan(64 * 1024);
    expect(await codeOfAsync(() => load('permit(principal, action, resource);', { 'schema.cedarschema': schema }))).toBe(
      'ERR_BUNDLE_TOO_LARGE',
    );
  });

  it('names the first validation errors and how many more, not every one (ERR_BUNDLE_SCHEMA)', async () => {
    const n = 300;
    const policies = Array.from(
      { length: n },
      (_, i) => `@id("p${i}-${'x'.repeat(500)}") permit(principal, action, resource) when { principal.nosuch${i} == 1 };`,
    ).join('\n');
    const err = await CedarEngine.factory(SETTINGS)(bundle(policies), OPTIONS).then(
      () => null,
      (e: unknown) => e as VerdictError,
    );
    expect(err).toBeInstanceOf(VerdictError);
    expect(err!.code).toBe('ERR_BUNDLE_SCHEMA');
    // 300 errors of > 500 characters each were ~190 KiB of message; now ten, each cut, then the count.
    expect(err!.message.length).toBeLessThan(4096);
    expect(err!.message).toMatch(/… and \d+ more$/);
  });
});

describe('Cedar entity hierarchies', () => {
  it('walks a request’s reach only one entity past maxEntitiesPerRequest, however deep the chain', () => {
    // A 100,000-deep parent chain: the whole reach was walked and kept for each entity a request named.
    const n = 100_000;
    const chain = Array.from({ length: n }, (_, i) => ({
      uid: { type: 'Verdict::PathPrefix', id: `/p${i}` },
      attrs: {},
      parents: i + 1 < n ? [{ type: 'Verdict::PathPrefix', id: `/p${i + 1}` }] : [],
    }));
    const store = new CedarEntityStore(chain, 64);
    expect(store.reach('Verdict::PathPrefix', '/p0')).toHaveLength(65);
    expect(store.reach('Verdict::PathPrefix', `/p${n - 3}`)).toHaveLength(3);
  });

  it('denies ERR_POLICY_EVAL a request whose reach is past the bound, through the engine', async () => {
    const n = 100;
    const chain = Array.from({ length: n }, (_, i) => ({
      uid: { type: 'Verdict::PathPrefix', id: `/p${i}` },
      attrs: {},
      parents: i + 1 < n ? [{ type: 'Verdict::PathPrefix', id: `/p${i + 1}` }] : [],
    }));
    const engine = await CedarEngine.factory(SETTINGS)(
      bundle('permit(principal, action, resource);', { 'entities.json': JSON.stringify(chain) }),
      OPTIONS,
    );
    expect(await codeOfAsync(() => engine.evaluate(input('/p0')))).toBe('ERR_POLICY_EVAL');
    expect((await engine.evaluate(input(`/p${n - 10}`))).allowed).toBe(true);
  });

  it('denies ERR_POLICY_EVAL a request that reaches more than 256 Ki characters of entities (a 1 MiB attribute)', async () => {
    // cedar-wasm parses every entity it is passed on every call: ~25 ms per request for this group here.
    const schema = SCHEMA.replace('entity Group in [Group];', 'entity Group in [Group] = { blob?: String };');
    const workload = (id: string, group: string) => ({
      uid: { type: 'Verdict::Workload', id },
      attrs: { spiffeId: id, trustDomain: 'td.example', path: '/w', svidType: 'x509' },
      parents: [{ type: 'Verdict::Group', id: group }],
    });
    const entities = [
      { uid: { type: 'Verdict::Group', id: 'big' }, attrs: { blob: 'x'.repeat(1 << 20) }, parents: [] },
      { uid: { type: 'Verdict::Group', id: 'small' }, attrs: { blob: 'x' }, parents: [] },
      workload(WORKLOAD, 'big'),
      workload(`${WORKLOAD}2`, 'small'),
    ];
    const engine = await CedarEngine.factory(SETTINGS)(
      cedarBundleFromFiles({
        'policies.cedar': 'permit(principal, action, resource);',
        'schema.cedarschema': schema,
        'entities.json': JSON.stringify(entities),
      }),
      OPTIONS,
    );
    await expect(Promise.resolve().then(() => engine.evaluate(input('/', WORKLOAD)))).rejects.toMatchObject({
      code: 'ERR_POLICY_EVAL',
      message: expect.stringContaining('characters of Cedar entities'),
    });
    expect((await engine.evaluate(input('/', `${WORKLOAD}2`))).allowed).toBe(true);
  });

  // What verdict already did with these (each is refused with its code, or served as written).
  const group = (id: string, parents: string[] = []) => ({
    uid: { type: 'Verdict::Group', id },
    attrs: {},
    parents: parents.map((p) => ({ type: 'Verdict::Group', id: p })),
  });
  it.each([
    { name: 'a parent cycle (A in B in A)', entities: [group('A', ['B']), group('B', ['A'])], code: 'ERR_BUNDLE_SCHEMA' },
    { name: 'an entity without parents', entities: [{ uid: { type: 'Verdict::Group', id: 'A' }, attrs: {} }], code: 'ERR_BUNDLE_SCHEMA' },
    {
      name: 'an entity type the schema lacks',
      entities: [{ uid: { type: 'Nope', id: 'A' }, attrs: {}, parents: [] }],
      code: 'ERR_BUNDLE_SCHEMA',
    },
    { name: 'one entity defined twice', entities: [group('A'), group('A')], code: 'ERR_BUNDLE_INVALID' },
  ])('refuses $name with $code', async ({ entities, code }) => {
    const load = CedarEngine.factory(SETTINGS)(
      bundle('permit(principal, action, resource);', { 'entities.json': JSON.stringify(entities) }),
      OPTIONS,
    );
    expect(await codeOfAsync(load)).toBe(code);
  });

  it.each(['__proto__', 'constructor', 'prototype'])('serves membership in a group whose id is "%s"', async (id) => {
    const entities = [
      group(id),
      {
        uid: { type: 'Verdict::Workload', id: WORKLOAD },
        attrs: { spiffeId: WORKLOAD, trustDomain: 'td.example', path: '/w', svidType: 'x509' },
        parents: [{ type: 'Verdict::Group', id }],
      },
    ];
    const engine = await CedarEngine.factory(SETTINGS)(
      bundle(`permit(principal in Verdict::Group::"${id}", action, resource);`, { 'entities.json': JSON.stringify(entities) }),
      OPTIONS,
    );
    expect((await engine.evaluate(input('/', WORKLOAD))).allowed).toBe(true);
    expect((await engine.evaluate(input('/'))).allowed).toBe(false);
  });
});

describe('Cedar text that does not parse or does not fit', () => {
  it.each([
    {
      name: 'policies that do not parse',
      files: { 'policies.cedar': 'permit(principal, action, resource) when { ];' },
      code: 'ERR_BUNDLE_INVALID',
    },
    {
      name: 'a schema that does not parse',
      files: { 'policies.cedar': 'permit(principal, action, resource);', 'schema.cedarschema': 'namespace {{' },
      code: 'ERR_BUNDLE_SCHEMA',
    },
    {
      name: 'policies the schema does not match',
      files: { 'policies.cedar': 'permit(principal, action, resource) when { resource.nosuch == 1 };' },
      code: 'ERR_BUNDLE_SCHEMA',
    },
    {
      name: 'entities.json that is not JSON',
      files: { 'policies.cedar': 'permit(principal, action, resource);', 'entities.json': '[{' },
      code: 'ERR_BUNDLE_INVALID',
    },
    {
      name: 'entities.json that is not an array',
      files: { 'policies.cedar': 'permit(principal, action, resource);', 'entities.json': '{"__proto__": []}' },
      code: 'ERR_BUNDLE_INVALID',
    },
  ])('refuses $name with $code', async ({ files, code }) => {
    const { 'policies.cedar': policies, ...more } = files;
    expect(await codeOfAsync(CedarEngine.factory(SETTINGS)(bundle(policies, more), OPTIONS))).toBe(code);
    expect(codeOf(() => CedarEngine.load(bundle(policies, more), SETTINGS))).toBe(code);
  });
});

describe('Cedar requests with prototype-named methods and headers', () => {
  const withHeaders = (headers: Record<string, string>, method = 'GET'): InputDocument => {
    const doc = input();
    (doc.attributes as { request: { http: Record<string, unknown> } }).request.http = { method, path: '/', host: 'api.example', headers };
    return doc;
  };

  it('sees a request header named "__proto__" as a tag (it was dropped)', async () => {
    const engine = await CedarEngine.factory(SETTINGS)(
      bundle(
        '@id("open") permit(principal, action, resource);\n@id("no-proto") forbid(principal, action, resource) when { context.headers.hasTag("__proto__") };',
      ),
      OPTIONS,
    );
    const headers = Object.defineProperty({}, '__proto__', { value: 'x', enumerable: true }) as Record<string, string>;
    expect((await engine.evaluate(withHeaders(headers))).reasons).toEqual(['no-proto']);
    expect((await engine.evaluate(withHeaders({ other: 'x' }))).allowed).toBe(true);
  });

  it.each(['constructor', 'toString'])(
    'maps an HTTP method "%s" to the action of that name, not to an inherited member',
    async (method) => {
      const schema = SCHEMA.replace('"TRACE", "OTHER"', `"TRACE", "OTHER", "${method}"`);
      const engine = await CedarEngine.factory(SETTINGS)(
        cedarBundleFromFiles({
          'policies.cedar': `@id("m") permit(principal, action == Verdict::Action::"${method}", resource);`,
          'schema.cedarschema': schema,
        }),
        OPTIONS,
      );
      expect((await engine.evaluate(withHeaders({}, method))).reasons).toEqual(['m']);
      expect((await engine.evaluate(withHeaders({}, 'GET'))).allowed).toBe(false);
    },
  );
});
