import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lintCacheKey, type LintSource } from '../../../src/cache/cache-lint';
import { toolPath } from '../../../src/cli/tools';
import type { VerdictError } from '../../../src/errors';

const root = join(__dirname, '..', '..', '..');
const opa = toolPath('opa');

function source(dir: string, manifestOverride?: unknown): LintSource {
  const files = new Map<string, Buffer>();
  for (const f of readdirSync(dir)) if (f.endsWith('.rego') || f.endsWith('.cedar')) files.set(f, readFileSync(join(dir, f)));
  const manifest = (manifestOverride ?? JSON.parse(readFileSync(join(dir, '.manifest'), 'utf8'))) as LintSource['manifest'];
  return { manifest, files };
}

function withKey(dir: string, key: string[]): unknown {
  const m = JSON.parse(readFileSync(join(dir, '.manifest'), 'utf8')) as { metadata: { verdict: { cache: { key: string[] } } } };
  m.metadata.verdict.cache.key = key;
  return m;
}

describe('cache-key lint on real policies', () => {
  const regoDir = join(root, 'test/fixtures/cache/rego-headers');
  const cedarDir = join(root, 'test/fixtures/cache/cedar-mesh');

  it('passes the default policy: its key declares the SPIFFE ID, method and path it reads', async () => {
    const report = await lintCacheKey(source(join(root, 'policies/default')), { opa });
    expect(report.reads).toEqual(['attributes.request.http.method', 'attributes.request.http.path', 'spiffe.id']);
    expect(report.findings).toEqual([]);
    expect(report.ok).toBe(true);
  });

  it('catches a Rego header read (through an import alias) that the key omits', async () => {
    const report = await lintCacheKey(source(regoDir), { opa });
    expect(report.ok).toBe(false);
    expect(report.findings.map((f) => [f.kind, f.path])).toEqual([['omitted-input', 'attributes.request.http.headers.x-tenant']]);
    expect(report.reads).toContain('spiffe.id'); // followed through `id := input.spiffe; id.id`
  });

  it('accepts the Rego policy once the header (or a prefix of it) is declared', async () => {
    const key = ['spiffe.id', 'attributes.request.http.method', 'attributes.request.http.headers.x-tenant', 'parsed_path'];
    expect((await lintCacheKey(source(regoDir, withKey(regoDir, key)), { opa })).ok).toBe(true);
    const prefix = ['spiffe', 'attributes.request.http', 'parsed_path'];
    expect((await lintCacheKey(source(regoDir, withKey(regoDir, prefix)), { opa })).ok).toBe(true);
  });

  it('catches a Cedar context read that the key omits (from Cedar JSON policy form)', async () => {
    const report = await lintCacheKey(source(cedarDir), { opa });
    expect(report.findings.map((f) => [f.kind, f.path])).toEqual([['omitted-input', 'attributes.request.http.headers.x-debug']]);
    expect(report.reads).toEqual(['attributes.request.http.headers.x-debug', 'attributes.request.http.method', 'spiffe.id', 'tenant']);
  });

  it('flags a Cedar key that omits the principal', async () => {
    const report = await lintCacheKey(source(cedarDir, withKey(cedarDir, ['attributes.request.http', 'tenant'])), { opa });
    expect(report.findings.map((f) => f.path)).toEqual(['spiffe.id']);
  });

  const cases: { name: string; rego: string; key: string[]; omitted: string[] }[] = [
    { name: 'input passed whole to a function', rego: 'f(x) if x.a\nallow if f(input)', key: ['a'], omitted: [''] },
    { name: 'dynamic header lookup reads all headers', rego: 'allow if input.h[k] == "v"', key: ['h.x'], omitted: ['h'] },
    { name: 'alias of an alias', rego: 'allow if { a := input.x; b := a.y; b.z == 1 }', key: ['x.y.q'], omitted: ['x.y.z'] },
    { name: 'alias used whole', rego: 'allow if { a := input.x; count(a) > 1 }', key: ['x.y'], omitted: ['x'] },
    { name: 'covered by a prefix', rego: 'allow if input.x.y.z == 1', key: ['x'], omitted: [] },
  ];
  for (const c of cases) {
    it(`Rego: ${c.name}`, async () => {
      const files = new Map([['p.rego', Buffer.from(`package p\nimport rego.v1\n${c.rego}\n`)]]);
      const manifest = { metadata: { verdict: { cache: { key: c.key, ttlMs: 1000 } } } };
      const report = await lintCacheKey({ manifest, files }, { opa });
      expect(report.findings.filter((f) => f.kind === 'omitted-input').map((f) => f.path)).toEqual(c.omitted);
    });
  }

  it('flags a nondeterministic builtin no key can cover', async () => {
    const files = new Map([['p.rego', Buffer.from('package p\nimport rego.v1\nallow if time.now_ns() > input.t\n')]]);
    const report = await lintCacheKey({ manifest: { metadata: { verdict: { cache: { key: ['t'], ttlMs: 1000 } } } }, files }, { opa });
    expect(report.findings.map((f) => [f.kind, f.path])).toEqual([['nondeterministic', 'time.now_ns']]);
  });

  it('reports a policy that does not parse with ERR_CACHE_LINT', async () => {
    const files = new Map([['p.rego', Buffer.from('package p\nallow if {{{\n')]]);
    const err = await lintCacheKey({ manifest: {}, files }, { opa }).catch((e: unknown) => e as VerdictError);
    expect((err as VerdictError).code).toBe('ERR_CACHE_LINT');
  });
});
