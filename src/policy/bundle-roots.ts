import { VerdictError } from '../errors';
import type { PolicyBundle } from './bundle';

/**
 * OPA bundle roots (OPA docs, "Bundle File Format" › manifest `roots`): the data and policy paths a
 * bundle owns. As `opa` does: an absent list means [""] (everything); two roots of one manifest may not
 * overlap; every data document must lie under a root (a data object whose path is only a prefix of a root
 * is descended into); every Rego package and wasm entrypoint must lie under a root. Refusals are
 * ERR_BUNDLE_ROOTS. Run after the signature check: data is parsed only when its place is not settled by
 * its directory alone.
 */
export function checkBundleRoots(bundle: Pick<PolicyBundle, 'manifest' | 'files'>): void {
  const roots = manifestRoots(bundle.manifest.roots);
  if (roots.some((r) => r.length === 0)) return; // "" owns everything
  for (let i = 0; i < roots.length; i++) {
    for (let j = i + 1; j < roots.length; j++) {
      if (contains(roots[i] as string[], roots[j] as string[]) || contains(roots[j] as string[], roots[i] as string[])) {
        throw rootsError(`manifest roots "${(roots[i] as string[]).join('/')}" and "${(roots[j] as string[]).join('/')}" overlap`);
      }
    }
  }
  for (const [name, body] of bundle.files) {
    const base = name.slice(name.lastIndexOf('/') + 1);
    const dir = name.includes('/') ? name.slice(0, name.lastIndexOf('/')).split('/') : [];
    if (base === 'data.json') checkData(roots, dir, body, name);
    else if (name.endsWith('.rego')) checkPolicy(roots, regoPackage(body.toString('utf8')), name);
  }
  for (const w of bundle.manifest.wasm ?? []) {
    if (typeof w?.entrypoint === 'string')
      checkPolicy(
        roots,
        w.entrypoint.split('/').filter((s) => s !== ''),
        `wasm entrypoint ${w.entrypoint}`,
      );
  }
}

function manifestRoots(raw: unknown): string[][] {
  if (raw === undefined || raw === null) return [[]];
  if (!Array.isArray(raw) || !raw.every((r) => typeof r === 'string')) throw rootsError('manifest roots must be a list of strings');
  return (raw as string[]).map((r) => r.split('/').filter((s) => s !== ''));
}

/** True when `path` lies under (or at) `root`, segment by segment ("a/b" does not contain "a/bc"). */
function contains(root: readonly string[], path: readonly string[]): boolean {
  return root.length <= path.length && root.every((s, i) => s === path[i]);
}

function underSomeRoot(roots: string[][], path: string[]): boolean {
  return roots.some((r) => contains(r, path));
}

function checkData(roots: string[][], dir: string[], body: Buffer, file: string): void {
  if (underSomeRoot(roots, dir)) return;
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    throw new VerdictError('ERR_BUNDLE_INVALID', `${file} is not valid JSON`);
  }
  walkData(roots, dir, doc, file);
}

/** A node under a root is fine; an object on the way to a root is descended; anything else is outside. */
function walkData(roots: string[][], path: string[], node: unknown, file: string): void {
  if (underSomeRoot(roots, path)) return;
  const onTheWay = roots.some((r) => contains(path, r));
  if (onTheWay && typeof node === 'object' && node !== null && !Array.isArray(node)) {
    for (const [k, v] of Object.entries(node)) walkData(roots, [...path, k], v, file);
    return;
  }
  throw rootsError(`manifest roots do not permit data at /${path.join('/')} (from ${file})`);
}

function checkPolicy(roots: string[][], path: string[] | null, what: string): void {
  if (path === null) throw new VerdictError('ERR_BUNDLE_INVALID', `${what} declares no package`);
  if (!underSomeRoot(roots, path)) throw rootsError(`manifest roots do not permit ${what} at /${path.join('/')}`);
}

/** `package a.b["c"]` → [a, b, c]: the first package clause, comments skipped. */
function regoPackage(text: string): string[] | null {
  const m = /^[ \t]*package[ \t]+([A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\["[^"\n]*"\])*)/m.exec(text.replace(/#[^\n]*/g, ''));
  if (!m) return null;
  const parts: string[] = [];
  for (const seg of (m[1] as string).matchAll(/([A-Za-z_]\w*)|\["([^"\n]*)"\]/g)) parts.push((seg[1] ?? seg[2]) as string);
  return parts;
}

function rootsError(message: string): VerdictError {
  return new VerdictError('ERR_BUNDLE_ROOTS', message);
}
