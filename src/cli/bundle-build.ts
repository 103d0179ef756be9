import { execFile } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { VerdictError } from '../errors';
import { readBundle } from '../policy/bundle-reader';
import type { PolicyBundle } from '../policy/bundle';
import { toolPath } from './tools';

const run = promisify(execFile);

export interface BuildOptions {
  out: string;
  entrypoints?: string[];
  revision?: string;
  opa?: string;
}

/**
 * Builds a Rego policy directory into an OPA wasm bundle with the pinned `opa build -t wasm`. The
 * directory's `.manifest` (roots, metadata.verdict) is kept; `*_test.rego` files stay out of the bundle.
 */
export async function buildRegoBundle(dir: string, options: BuildOptions): Promise<PolicyBundle> {
  const manifest = await readManifest(dir);
  const meta = (manifest.metadata as { verdict?: { entrypoint?: string } } | undefined)?.verdict;
  const entrypoints = options.entrypoints?.length ? options.entrypoints : [meta?.entrypoint ?? 'envoy/authz/allow'];
  await mkdir(dirname(options.out), { recursive: true });
  const args = ['build', '-t', 'wasm', '-b', dir, '--ignore', '*_test.rego', '-o', options.out];
  for (const e of entrypoints) args.push('-e', e);
  if (options.revision) args.push('--revision', options.revision);
  try {
    await run(options.opa ?? toolPath('opa'), args, { maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new VerdictError('ERR_BUNDLE_INVALID', `opa build failed: ${(e.stderr ?? e.message).trim()}`);
  }
  return readBundle(await readFile(options.out), options.out);
}

async function readManifest(dir: string): Promise<Record<string, unknown>> {
  try {
    return JSON.parse(await readFile(join(dir, '.manifest'), 'utf8')) as Record<string, unknown>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new VerdictError('ERR_BUNDLE_INVALID', `${dir}/.manifest: ${(err as Error).message}`);
  }
}
