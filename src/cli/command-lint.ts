import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { Command } from 'commander';
import { lintCacheKey, type LintSource } from '../cache/cache-lint';
import { VerdictError } from '../errors';
import { readBundle } from '../policy/bundle-reader';
import { toolPath } from './tools';

/** `verdict bundle lint`: added to the group registerBundle returns. */
export function registerLint(bundle: Command): void {
  bundle
    .command('lint <dirOrBundle>')
    .description('Check that the declared cache key (metadata.verdict.cache.key) covers every input path the policy reads; exit 1 if not')
    .option('--json', 'print the report as JSON')
    .action(async (target: string, opts: { json?: boolean }) => {
      const source = (await stat(target)).isDirectory() ? await readPolicyDir(target) : await readBundle(await readFile(target), target);
      const report = await lintCacheKey(source, { opa: toolPath('opa') });
      if (opts.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else {
        process.stdout.write(
          report.declared === null
            ? 'no cache declared: decisions of this bundle are not cached\n'
            : `key: ${report.declared.join(', ')}\n`,
        );
        process.stdout.write(`reads: ${report.reads.map((r) => r || '(whole input)').join(', ')}\n`);
        for (const f of report.findings) process.stdout.write(`  ${f.file}: ${f.message}\n`);
      }
      if (!report.ok)
        throw new VerdictError('ERR_CACHE_KEY_OMITS_READ', `${report.findings.length} finding(s): a cached answer could be wrong`);
    });
}

/** A policy directory as the lint sees it: its .rego and .cedar files (paths relative to it) and its .manifest. */
export async function readPolicyDir(dir: string): Promise<LintSource> {
  const files = new Map<string, Buffer>();
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) await walk(p);
      else if (/\.(rego|cedar)$/.test(entry.name)) files.set(relative(dir, p), await readFile(p));
    }
  };
  await walk(dir);
  let manifest = {};
  try {
    manifest = JSON.parse(await readFile(join(dir, '.manifest'), 'utf8')) as object;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new VerdictError('ERR_BUNDLE_INVALID', `${dir}/.manifest: ${(err as Error).message}`);
  }
  return { manifest, files };
}
