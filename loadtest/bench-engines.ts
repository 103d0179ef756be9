import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cedarBundleFromFiles } from '../src/policy/cedar-bundle';
import { readBundle } from '../src/policy/bundle-reader';
import { CedarEngine } from '../src/policy/engine-cedar';
import { WasmEngine } from '../src/policy/engine-wasm';
import type { PolicyEngine } from '../src/policy/policy-engine';
import type { InputDocument } from '../src/request/input-document';
import { runAsScript } from './lib/run-as-script';

/**
 * Per-decision cost of the Cedar engine (10 / 100 policies × 10 / 10,000 bundle entities) and of the
 * custom wasm engine (mesh-acl, in its worker), p50/p99 over the same realistic request. Goals (issue 6):
 * Cedar < 150 µs p99 at 100 policies and 10,000 entities; custom engine < 20 µs p99.
 */
const ROOT = join(__dirname, '..', '..');
const WARMUP = 3_000;
const SAMPLES = 5_000;

function policies(n: number): string {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    out.push(
      i % 10 === 9
        ? `@id("forbid-${i}") forbid(principal in Verdict::Group::"g${i}", action, resource) when { resource.path like "/admin${i}/*" };`
        : `@id("permit-${i}") permit(principal in Verdict::Group::"g${i % 50}", action in [Verdict::Action::"GET", Verdict::Action::"HEAD"], resource) when { resource.path like "/svc${i}/*" && context.headers.hasTag("x-request-id") };`,
    );
  }
  return out.join('\n');
}

/** Groups g0…g49 in a hierarchy; the rest are workloads, each in two groups. */
function entities(n: number): unknown[] {
  const out: unknown[] = [];
  for (let g = 0; g < Math.min(50, n); g++)
    out.push({
      uid: { type: 'Verdict::Group', id: `g${g}` },
      attrs: {},
      parents: g > 0 ? [{ type: 'Verdict::Group', id: `g${Math.floor(g / 2)}` }] : [],
    });
  for (let w = out.length; w < n; w++) {
    out.push({
      uid: { type: 'Verdict::Workload', id: `spiffe://example.org/ns/n${w}/sa/w${w}` },
      attrs: { spiffeId: '', trustDomain: '', path: '', svidType: '' },
      parents: [
        { type: 'Verdict::Group', id: `g${w % 50}` },
        { type: 'Verdict::Group', id: `g${(w * 7) % 50}` },
      ],
    });
  }
  return out;
}

function requestFor(id: string, path: string): InputDocument {
  const cases = JSON.parse(readFileSync(join(ROOT, 'test/fixtures/requests/default-policy-cases.json'), 'utf8')) as {
    cases: { input: InputDocument }[];
  };
  const input = structuredClone((cases.cases[12] as { input: InputDocument }).input);
  (input.attributes as { request: { http: { path: string } } }).request.http.path = path;
  const u = new URL(id);
  input.spiffe = { id, trust_domain: u.host, path: u.pathname, svid_type: 'x509', expires_at: '2030-01-01T00:00:00Z' };
  return input;
}

async function measure(engine: PolicyEngine, input: InputDocument): Promise<{ p50Us: number; p99Us: number }> {
  for (let i = 0; i < WARMUP; i++) await engine.evaluate(input);
  const ns: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const t = process.hrtime.bigint();
    await engine.evaluate(input);
    ns.push(Number(process.hrtime.bigint() - t));
  }
  ns.sort((a, b) => a - b);
  const at = (q: number): number => Math.round((ns[Math.floor(q * (ns.length - 1))] as number) / 10) / 100;
  return { p50Us: at(0.5), p99Us: at(0.99) };
}

export async function run(): Promise<Record<string, unknown>> {
  const schema = readFileSync(join(ROOT, 'policies/cedar-default/schema.cedarschema'), 'utf8');
  const results: Record<string, { p50Us: number; p99Us: number }> = {};
  for (const nPolicies of [10, 100]) {
    for (const nEntities of [10, 10_000]) {
      const bundle = cedarBundleFromFiles({
        'policies.cedar': policies(nPolicies),
        'schema.cedarschema': schema,
        'entities.json': JSON.stringify(entities(nEntities)),
      });
      const engine = CedarEngine.load(bundle);
      const w = nEntities - 1;
      results[`cedar ${nPolicies} policies, ${nEntities} entities`] = await measure(
        engine,
        requestFor(`spiffe://example.org/ns/n${w}/sa/w${w}`, '/svc3/items'),
      );
    }
  }
  const meshPath = join(ROOT, 'dist/bundles/mesh-acl.tar.gz');
  const wasm = await WasmEngine.load(await readBundle(readFileSync(meshPath), meshPath));
  results['custom wasm (mesh-acl, worker)'] = await measure(
    wasm,
    requestFor('spiffe://example.org/ns/default/sa/frontend', '/api/users/42'),
  );
  wasm.close();

  const goals: Record<string, number> = { 'cedar 100 policies, 10000 entities': 150, 'custom wasm (mesh-acl, worker)': 20 };
  console.log('engine'.padEnd(40), 'p50 µs'.padStart(9), 'p99 µs'.padStart(9), 'goal p99'.padStart(9));
  for (const [name, r] of Object.entries(results)) {
    console.log(name.padEnd(40), String(r.p50Us).padStart(9), String(r.p99Us).padStart(9), String(goals[name] ?? '').padStart(9));
  }
  const small = results['cedar 100 policies, 10 entities'];
  const large = results['cedar 100 policies, 10000 entities'];
  const ratio = small && large ? Math.round((large.p50Us / small.p50Us) * 100) / 100 : null;
  console.log(`cedar p50 at 10,000 vs 10 bundle entities (100 policies): ${ratio}x`);
  return { results, entityScalingRatio: ratio };
}

runAsScript(module, run);
