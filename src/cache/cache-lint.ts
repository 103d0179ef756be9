import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { VerdictError, toVerdictError } from '../errors';
import type { BundleManifest } from '../policy/bundle';
import { readCacheDeclaration } from './cache-declaration';
import { cedarInputReads } from './cedar-reads';
import type { PolicyReads } from './input-read';
import { regoInputReads } from './rego-reads';

const run = promisify(execFile);

/** What the lint needs of a bundle or a policy directory. */
export interface LintSource {
  manifest: BundleManifest;
  files: ReadonlyMap<string, Buffer>;
}

export interface LintFinding {
  kind: 'omitted-input' | 'nondeterministic';
  /** The input path read (dotted; "" = the whole input) or the builtin called. */
  path: string;
  file: string;
  where: string;
  message: string;
}

export interface LintReport {
  /** Declared key paths; null when the bundle declares no cache (then nothing is cached and all is well). */
  declared: string[] | null;
  /** Distinct input paths the policy reads (dotted; "" = the whole input). */
  reads: string[];
  findings: LintFinding[];
  ok: boolean;
}

/**
 * Checks that a bundle's declared cache key covers every input path its policy reads: a read path is covered
 * when a declared path is a prefix of it (declaring `attributes.request.http` covers its `method`). Rego is
 * analysed from `opa parse`'s AST (the real OPA parser), Cedar from cedar-wasm's JSON policy form.
 */
/** How long one `opa parse` may run: lint runs at bundle load in the server too (cache.lint), never waited on for ever. */
export const OPA_PARSE_TIMEOUT_MS = 30_000;

export async function lintCacheKey(source: LintSource, options: { opa: string; parseTimeoutMs?: number }): Promise<LintReport> {
  const decl = readCacheDeclaration(source.manifest);
  const reads = await policyReads(source, options.opa, options.parseTimeoutMs ?? OPA_PARSE_TIMEOUT_MS);
  const declared = decl ? [...decl.keyPaths] : null;
  const findings: LintFinding[] = [];
  if (decl) {
    const seen = new Set<string>();
    for (const r of reads.inputs) {
      const path = r.segments.join('.');
      if (decl.keySegments.some((k) => isPrefix(k, r.segments)) || seen.has(path)) continue;
      seen.add(path);
      findings.push({
        kind: 'omitted-input',
        path,
        file: r.file,
        where: r.where,
        message: `${r.where} reads input${path === '' ? ' (whole)' : `.${path}`}, which the declared cache key omits`,
      });
    }
    for (const c of reads.nondeterministic) {
      findings.push({
        kind: 'nondeterministic',
        path: c.name,
        file: c.file,
        where: c.where,
        message: `${c.where} calls ${c.name}: its answer cannot be cached`,
      });
    }
  }
  const distinct = [...new Set(reads.inputs.map((r) => r.segments.join('.')))].sort();
  return { declared, reads: distinct, findings, ok: findings.length === 0 };
}

function isPrefix(prefix: readonly string[], path: readonly string[]): boolean {
  if (prefix.length > path.length) return false;
  for (let i = 0; i < prefix.length; i++) if (prefix[i] !== path[i]) return false;
  return true;
}

async function policyReads(source: LintSource, opa: string, timeoutMs: number): Promise<PolicyReads> {
  const all: PolicyReads = { inputs: [], nondeterministic: [] };
  // `opa build -t wasm` replaces each module by a stub that only imports its entrypoint: the policy that
  // runs is policy.wasm, so those .rego files say nothing about what it reads.
  const compiled = source.files.has('policy.wasm');
  const rego = compiled ? [] : [...source.files].filter(([p]) => p.endsWith('.rego') && !p.endsWith('_test.rego'));
  const cedarFiles = [...source.files].filter(([p]) => p.endsWith('.cedar'));
  if (rego.length === 0 && cedarFiles.length === 0) {
    throw new VerdictError(
      'ERR_CACHE_LINT',
      compiled
        ? 'an OPA wasm bundle carries no Rego source: lint the policy directory it was built from (verdict bundle lint DIR)'
        : 'no policy source (.rego or .cedar) to analyse',
    );
  }
  for (const [path, text] of cedarFiles) merge(all, cedarInputReads(text.toString('utf8'), path));
  if (rego.length > 0) for (const r of await parseRego(rego, opa, timeoutMs)) merge(all, r);
  return all;
}

function merge(into: PolicyReads, from: PolicyReads): void {
  into.inputs.push(...from.inputs);
  into.nondeterministic.push(...from.nondeterministic);
}

/** One `opa parse --format json` per module (it takes one file); sources are written to a private temp dir. */
async function parseRego(modules: [string, Buffer][], opa: string, timeoutMs: number): Promise<PolicyReads[]> {
  const dir = await mkdtemp(join(tmpdir(), 'verdict-lint-'));
  try {
    const out: PolicyReads[] = [];
    for (const [i, [path, text]] of modules.entries()) {
      const file = join(dir, `m${i}.rego`);
      await writeFile(file, text);
      let stdout: string;
      try {
        ({ stdout } = await run(opa, ['parse', '--format', 'json', file], {
          maxBuffer: 64 * 1024 * 1024,
          timeout: timeoutMs,
          killSignal: 'SIGKILL',
        }));
      } catch (err) {
        const e = err as { stderr?: string; code?: string; killed?: boolean };
        const why =
          e.code === 'ENOENT'
            ? `opa not found at ${opa}`
            : e.killed
              ? `ran past ${timeoutMs} ms and was stopped`
              : (e.stderr ?? toVerdictError(err).message).trim();
        throw new VerdictError('ERR_CACHE_LINT', `${path}: opa parse failed: ${why}`);
      }
      out.push(regoInputReads(JSON.parse(stdout) as unknown, path));
    }
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
