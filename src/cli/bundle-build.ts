import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { lintCacheKey } from '../cache/cache-lint';
import { VerdictError } from '../errors';
import { DEFAULT_BUNDLE_LIMITS, type PolicyBundle } from '../policy/bundle';
import { isMissingFile, readRegularFileBounded } from '../policy/bundle-file-read';
import { readBundle } from '../policy/bundle-reader';
import { writeBundle } from '../policy/bundle-writer';
import { engineFactory } from '../policy/engine-registry';
import type { EngineKind } from '../policy/policy-engine';
import { readManifest, readPolicyDir } from './command-lint';
import { defaultEngineOptions } from './engine-options';
import { readBundleFile } from './named-files';
import { toolPath } from './tools';

const run = promisify(execFile);

export interface BuildOptions {
  out: string;
  entrypoints?: string[];
  revision?: string;
  opa?: string;
  /**
   * Check the declared cache key against the Rego source first (as `verdict bundle lint`) and refuse to
   * build on a finding: a compiled bundle carries no source, so this is the one place it can be checked.
   */
  lint?: boolean;
  /** How long `opa build` may run (OPA_BUILD_TIMEOUT_MS): a directory holding a FIFO, or opa stuck, is not waited on for ever. */
  opaTimeoutMs?: number;
}

export const OPA_BUILD_TIMEOUT_MS = 10 * 60_000;

/**
 * Builds a Rego policy directory into an OPA wasm bundle with the pinned `opa build -t wasm`. The
 * directory's `.manifest` (roots, metadata.verdict) is kept; `*_test.rego` files stay out of the bundle.
 * Reproducible: opa runs inside the directory on `.`, so paths in the bundle (and the file names compiled
 * into policy.wasm) are relative to the bundle root, as `opa build` stores them; the result is then
 * repacked by writeBundle (sorted, fixed tar and gzip headers). Same sources → same bytes and sha256.
 */
export async function buildRegoBundle(dir: string, options: BuildOptions): Promise<PolicyBundle> {
  const manifest = await readManifest(dir);
  const meta = (manifest.metadata as { verdict?: { entrypoint?: string } } | undefined)?.verdict;
  const entrypoints = options.entrypoints?.length ? options.entrypoints : [meta?.entrypoint ?? 'envoy/authz/allow'];
  const opa = options.opa ?? toolPath('opa');
  if (options.lint) await lintBeforeBuild(dir, opa);
  await mkdir(dirname(options.out), { recursive: true });
  const work = await mkdtemp(join(tmpdir(), 'verdict-build-'));
  try {
    const raw = join(work, 'opa.tar.gz');
    const args = ['build', '-t', 'wasm', '-b', '.', '--ignore', '*_test.rego', '-o', raw];
    for (const e of entrypoints) args.push('-e', e);
    if (options.revision) args.push('--revision', options.revision);
    try {
      const timeout = options.opaTimeoutMs ?? OPA_BUILD_TIMEOUT_MS;
      await run(opa, args, { cwd: dir, maxBuffer: 16 * 1024 * 1024, timeout, killSignal: 'SIGKILL' }).catch((err: unknown) => {
        if ((err as { killed?: boolean }).killed)
          throw new VerdictError('ERR_BUNDLE_INVALID', `opa build ran past ${timeout} ms and was stopped`);
        throw err;
      });
    } catch (err) {
      if (err instanceof VerdictError) throw err;
      // opa prints compile errors on stdout or stderr depending on the failure: keep both.
      const e = err as { stdout?: string; stderr?: string; message: string };
      const why = [e.stderr, e.stdout].filter((t) => t !== undefined && t.trim() !== '').join('\n') || e.message;
      throw new VerdictError('ERR_BUNDLE_INVALID', `opa build failed: ${why.trim()}`);
    }
    // opa's output is as large as the directory's data makes it: read with the bundle bound.
    const built = await readBundleFile(raw);
    return await writeChecked(built.files, options.out);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function lintBeforeBuild(dir: string, opa: string): Promise<void> {
  const report = await lintCacheKey(await readPolicyDir(dir), { opa });
  if (report.ok) return;
  const findings = report.findings.map((f) => `${f.file}: ${f.message}`).join('; ');
  throw new VerdictError('ERR_CACHE_KEY_OMITS_READ', `${dir}: the declared cache key omits what the policy reads: ${findings}`);
}

export interface PackOptions {
  out: string;
  revision?: string;
  /** For a 'wasm' bundle: the module to package as /engine.wasm (else the directory's own engine.wasm). */
  module?: string;
}

/** Files a Cedar bundle carries from its directory (anything else there is left out). */
const CEDAR_FILES = ['policies.cedar', 'schema.cedarschema', 'schema.cedarschema.json', 'entities.json'];

/**
 * Builds a bundle whose engine needs no compiler here (the directory's .manifest says
 * metadata.verdict.engine 'cedar' or 'wasm'): packs the engine's files as an OPA-format .tar.gz, then
 * reads it back and instantiates it, so a bundle that would be refused at load fails the build instead.
 */
export async function buildPackedBundle(dir: string, engine: 'cedar' | 'wasm', options: PackOptions): Promise<PolicyBundle> {
  const manifest = await readManifest(dir);
  if (options.revision) manifest.revision = options.revision;
  const files: [string, Buffer][] = [['.manifest', Buffer.from(`${JSON.stringify(manifest)}\n`)]];
  if (engine === 'cedar') {
    for (const name of CEDAR_FILES) {
      const data = await readOptional(join(dir, name), 'policy file');
      if (data) files.push([name, data]);
    }
  } else {
    const module = await readOptional(options.module ?? join(dir, 'engine.wasm'), 'module');
    if (!module) throw new VerdictError('ERR_BUNDLE_INVALID', `no module: pass --module or put engine.wasm in ${dir}`);
    files.push(['engine.wasm', module]);
  }
  await mkdir(dirname(options.out), { recursive: true });
  const bundle = await writeChecked(new Map(files), options.out);
  const built = await engineFactory(bundle.engine)(bundle, defaultEngineOptions(''));
  built.close();
  return bundle;
}

/** The engine a policy directory's .manifest names (metadata.verdict.engine), 'opa' when it names none. */
export async function directoryEngine(dir: string): Promise<EngineKind> {
  const meta = ((await readManifest(dir)).metadata as { verdict?: { engine?: unknown } } | undefined)?.verdict;
  const engine = meta?.engine ?? 'opa';
  if (engine !== 'opa' && engine !== 'cedar' && engine !== 'wasm')
    throw new VerdictError('ERR_BUNDLE_ENGINE', `${dir}/.manifest names unknown engine ${JSON.stringify(engine)}`);
  return engine;
}

/** `files` packed, checked as a bundle from its bytes (nothing is read back from `out`), then written to `out`. */
async function writeChecked(files: ReadonlyMap<string, Buffer>, out: string): Promise<PolicyBundle> {
  const bytes = await writeBundle(files);
  const bundle = await readBundle(bytes, out);
  await writeFile(out, bytes);
  return bundle;
}

/** A file to pack, read with a bundle entry's bound (regular file, at most maxFileBytes); null when there is none. */
async function readOptional(path: string, what: string): Promise<Buffer | null> {
  try {
    return await readRegularFileBounded(path, DEFAULT_BUNDLE_LIMITS.maxFileBytes, what);
  } catch (err) {
    if (isMissingFile(err)) return null;
    throw err;
  }
}
