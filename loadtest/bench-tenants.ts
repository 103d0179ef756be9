/**
 * Memory per tenant: RSS of a verdict process (workers=1) serving 1 tenant vs 1+N tenants, each with its own
 * file bundle source, engine instance and cache, after every tenant's bundle is active and each has answered
 * a few Checks. Per-tenant cost = (RSS(1+N) − RSS(1)) / N, measured side by side in one run.
 * Run: npm run build && node dist/loadtest/bench-tenants.js
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultBundlePath, packageRoot } from '../src/package-root';
import { checkClient, httpCheckRequest, tempDir } from '../test/helpers/verdict-harness';
import { waitFor } from '../test/helpers/wait-for';
import { runAsScript } from './lib/run-as-script';
import { spawnVerdict, type VerdictProcess } from './lib/spawn-verdict';
import { printRows } from './lib/stats';

const EXTRA_TENANTS = 32;
const CHECKS_PER_TENANT = 20;

async function serving(v: VerdictProcess): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${v.httpPort}/metrics`)).text();
  return Number(/verdict_tenants\{state="serving"\} (\d+)/.exec(text)?.[1] ?? 0);
}

async function measure(tenants: number): Promise<{ tenants: number; rssMiB: number }> {
  const list = Array.from({ length: tenants }, (_, i) => ({
    name: `t${i}`,
    match: [`t${i}`],
    bundles: { source: { type: 'file', path: defaultBundlePath() } },
  }));
  const file = join(tempDir('verdict-bench-tenants-'), 'verdict.yaml');
  writeFileSync(file, JSON.stringify({ server: { workers: 1 }, tenants: { selector: { from: 'contextExtension', key: 'tenant' }, list } }));
  const v = await spawnVerdict(packageRoot(), ['--config', file]);
  try {
    await waitFor(async () => (await serving(v)) === tenants, `${tenants} tenants serving`, 60_000, 100);
    const client = checkClient(`127.0.0.1:${v.grpcPort}`);
    for (let i = 0; i < tenants; i++) {
      for (let k = 0; k < CHECKS_PER_TENANT; k++) {
        const req = httpCheckRequest({ path: `/api/${k}` }) as { attributes: { contextExtensions: Record<string, string> } };
        req.attributes.contextExtensions = { tenant: `t${i}` };
        await client.check(req);
      }
    }
    client.close();
    return { tenants, rssMiB: v.rssKiB() / 1024 };
  } finally {
    await v.stop();
  }
}

export async function run(): Promise<Record<string, unknown>> {
  const one = await measure(1);
  const many = await measure(1 + EXTRA_TENANTS);
  const perTenantMiB = (many.rssMiB - one.rssMiB) / EXTRA_TENANTS;
  printRows([
    ['tenants (default bundle each)', `${one.tenants}`, `${many.tenants}`, 'per tenant'],
    ['RSS (MiB)', one.rssMiB.toFixed(1), many.rssMiB.toFixed(1), perTenantMiB.toFixed(2)],
  ]);
  return { one, many, perTenantMiB: +perTenantMiB.toFixed(2) };
}

runAsScript(module, run);
