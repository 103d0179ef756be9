import { createRequire } from 'node:module';
import { VerdictError } from '../errors';
import { cedarReadToInput } from './cedar-input-mapping';
import type { PolicyReads } from './input-read';

type CedarWasm = typeof import('@cedar-policy/cedar-wasm/nodejs');
let cedarModule: CedarWasm | undefined;

/** Loaded on first use (the wasm costs start-up time every CLI command would otherwise pay). */
function cedar(): CedarWasm {
  // The package root is ESM-only; its nodejs build is CommonJS.
  cedarModule ??= createRequire(__filename)('@cedar-policy/cedar-wasm/nodejs') as CedarWasm;
  return cedarModule;
}

type Json = unknown;

/**
 * The input paths a Cedar policy set reads, from Cedar's own JSON policy form (policyToJson): scope
 * constraints other than `All` read their variable; in conditions, every attribute chain rooted at a
 * variable (`context.a.b`, `context has a`) reads that path, and a variable used whole reads all of it.
 * Paths are mapped to input paths by cedar-input-mapping.ts.
 */
export function cedarInputReads(text: string, file: string): PolicyReads {
  const parts = cedar().policySetTextToParts(text);
  if (parts.type !== 'success') throw lintError(file, parts.errors);
  const out: PolicyReads = { inputs: [], nondeterministic: [] };
  parts.policies.forEach((policy, i) => {
    const json = cedar().policyToJson(policy);
    if (json.type !== 'success') throw lintError(file, json.errors);
    const where = `policy${i}`;
    const est = json.json as unknown as Record<string, Json>;
    for (const scope of ['principal', 'action', 'resource'] as const) {
      if ((est[scope] as { op?: string } | undefined)?.op !== 'All')
        out.inputs.push({ segments: cedarReadToInput(scope, []), file, where });
    }
    const record = (variable: string, attrs: readonly string[]): void => {
      out.inputs.push({ segments: cedarReadToInput(variable, attrs), file, where });
    };
    for (const c of (est.conditions as { body: Json }[] | undefined) ?? []) visit(c.body, record);
  });
  return out;
}

function visit(node: Json, record: (variable: string, attrs: readonly string[]) => void): void {
  if (Array.isArray(node)) {
    for (const n of node) visit(n, record);
    return;
  }
  if (typeof node !== 'object' || node === null) return;
  const o = node as Record<string, Json>;
  if ('Value' in o) return; // a literal
  const chain = attributeChain(o);
  if (chain) {
    if (chain.variable !== '') record(chain.variable, chain.attrs);
    if (chain.rest !== null) visit(chain.rest, record);
    return;
  }
  for (const v of Object.values(o)) visit(v, record);
}

/** `{".": {left, attr}}` / `{"has": {left, attr}}` down to `{"Var": v}`; `rest` is a non-chain root to visit. */
function attributeChain(o: Record<string, Json>): { variable: string; attrs: string[]; rest: Json | null } | null {
  if (typeof o.Var === 'string') return { variable: o.Var, attrs: [], rest: null };
  const access = (o['.'] ?? o.has) as { left?: Json; attr?: string } | undefined;
  if (!access || typeof access.attr !== 'string' || typeof access.left !== 'object' || access.left === null) return null;
  const inner = attributeChain(access.left as Record<string, Json>);
  if (!inner) return { variable: '', attrs: [], rest: access.left };
  if (inner.variable === '') return inner;
  return { variable: inner.variable, attrs: [...inner.attrs, access.attr], rest: inner.rest };
}

function lintError(file: string, errors: unknown): VerdictError {
  return new VerdictError('ERR_CACHE_LINT', `${file}: Cedar does not parse: ${JSON.stringify(errors).slice(0, 500)}`);
}
