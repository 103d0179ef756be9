import { readdir, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { Command } from 'commander';
import { lintCacheKey, type LintSource } from '../cache/cache-lint';
import { VerdictError } from '../errors';
import { DEFAULT_BUNDLE_LIMITS } from '../policy/bundle';
import { isMissingFile, readRegularFileBounded } from '../policy/bundle-file-read';
import { readBundleFile } from './named-files';
import { toolPath } from './tools';

/** `verdict bundle lint`: added to the group registerBundle returns. */
export function registerLint(bundle: Command): void {
  bundle
    .command('lint <dirOrBundle>')
    .description('Check that the declared cache key (metadata.verdict.cache.key) covers every input path the policy reads; exit 1 if not')
    .option('--json', 'print the report as JSON')
    .action(async (target: string, opts: { json?: boolean }) => {
      // A target that cannot be stat'ed is read as a bundle, whose reader refuses it with its code.
      const isDir = await stat(target).then(
        (st) => st.isDirectory(),
        () => false,
      );
      const source = isDir ? await readPolicyDir(target) : await readBundleFile(target);
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

/**
 * A policy directory as the lint sees it: its .rego and .cedar files (paths relative to it) and its .manifest.
 * The directory may come from elsewhere (a pull request's policies in CI), so it is read as a bundle is:
 * regular files only (a FIFO or a device named *.rego is refused, not read), each at most maxFileBytes, at most
 * maxFiles of them, at most maxPathDepth deep. Symbolic links to directories are not followed, as `opa build`
 * does not follow them.
 */
export async function readPolicyDir(dir: string): Promise<LintSource> {
  const { maxFiles, maxFileBytes, maxPathDepth } = DEFAULT_BUNDLE_LIMITS;
  const files = new Map<string, Buffer>();
  const walk = async (d: string, depth: number): Promise<void> => {
    if (depth > maxPathDepth) throw new VerdictError('ERR_BUNDLE_INVALID', `${d} is more than ${maxPathDepth} directories deep`);
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) await walk(p, depth + 1);
      else if (/\.(rego|cedar)$/.test(entry.name)) {
        if (files.size === maxFiles) throw new VerdictError('ERR_BUNDLE_TOO_LARGE', `${dir} holds more than ${maxFiles} policy files`);
        files.set(relative(dir, p), await readRegularFileBounded(p, maxFileBytes, 'policy file'));
      }
    }
  };
  await walk(dir, 1);
  return { manifest: await readManifest(dir), files };
}

/**
 * A policy directory's .manifest, read with a bundle file's bounds (regular file, at most maxFileBytes);
 * none is {}. What is there must be a JSON object (ERR_BUNDLE_INVALID).
 */
export async function readManifest(dir: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = (await readRegularFileBounded(join(dir, '.manifest'), DEFAULT_BUNDLE_LIMITS.maxFileBytes, 'manifest')).toString('utf8');
  } catch (err) {
    if (isMissingFile(err)) return {};
    throw err;
  }
  let manifest: unknown;
  try {
    manifest = JSON.parse(text);
  } catch (err) {
    throw new VerdictError('ERR_BUNDLE_INVALID', `${dir}/.manifest: ${(err as Error).message}`);
  }
  if (typeof manifest !== 'object' || manifest === null || Array.isArray(manifest))
    throw new VerdictError('ERR_BUNDLE_INVALID', `${dir}/.manifest is not a JSON object`);
  return manifest as Record<string, unknown>;
}
