import { createRequire } from 'node:module';
import type * as CedarWasm from '@cedar-policy/cedar-wasm/nodejs';
import type { AuthorizationAnswer, DetailedError, Schema } from '@cedar-policy/cedar-wasm/nodejs';
import { DEFAULT_LOAD_TIMEOUT_MS } from './bundle';
import type { EnginesConfig } from '../config/sections/engines';
import { DEFAULT_ENGINES_CONFIG } from '../config/sections/engines-defaults';
import { VerdictError } from '../errors';
import type { InputDocument } from '../request/input-document';
import type { PolicyBundle } from './bundle';
import { verdictMetadata } from './bundle-reader';
import { CedarEntityStore } from './cedar-entity-store';
import { boundedList, type CheckedCedar, checkCedarFiles, checkCedarOffLoop } from './engine-cedar-check';
import { guardEngineStep } from './engine-input';
import { inputToCedarRequest, type CedarMappingOptions } from './cedar-request';
import type { EngineFactory, PolicyEngine } from './policy-engine';
import { checkHeader } from './opa-result';
import { EMPTY_RESULT_FIELDS, type KeyValue, type PolicyResult } from './policy-result';

// The package root is ESM-only; its nodejs/ build is CommonJS and compiles its wasm synchronously when
// required, so it is required on first use: deployments without Cedar bundles never pay for it.
let cedarModule: typeof CedarWasm | null = null;
function cedarWasm(): typeof CedarWasm {
  cedarModule ??= createRequire(__filename)('@cedar-policy/cedar-wasm/nodejs') as typeof CedarWasm;
  return cedarModule;
}

export type CedarSettings = EnginesConfig['cedar'];

/** Reason given when no policy is determining: Cedar's default deny. */
export const CEDAR_NO_MATCH = 'no_policy_matched';
const SCHEMA_FILES = ['schema.cedarschema', 'schema.cedarschema.json'] as const;

interface LoadedCedar {
  id: string;
  store: CedarEntityStore;
  mapping: CedarMappingOptions;
}

/**
 * Cedar policies run with cedar-wasm's stateful API: the policy set and schema are parsed once at bundle
 * load (per thread, under the bundle's sha256) and a decision passes only the request's own entities.
 * A policy set that does not validate against the schema in strict mode is refused at load.
 *
 * Loading has two halves. The check (engine-cedar-check.ts: parse, @ids, strict validation, entities) keeps
 * no state, so the server runs it in a worker with the load deadline; then the event loop does only what
 * must live on its thread: preparse the schema and the checked policies (by name), index the entities
 * (they arrive parsed, a slice per message), and probe. `load` runs both halves on the calling thread (the CLI).
 */
export class CedarEngine implements PolicyEngine {
  readonly kind = 'cedar' as const;

  private constructor(
    private readonly loaded: LoadedCedar,
    private readonly settings: CedarSettings,
  ) {}

  static factory(settings: CedarSettings = DEFAULT_ENGINES_CONFIG.cedar): EngineFactory {
    return async (bundle: PolicyBundle, options) => {
      const checked = await checkCedarOffLoop(
        cedarFiles(bundle, (b) => b),
        options.loadTimeoutMs ?? DEFAULT_LOAD_TIMEOUT_MS,
      );
      return CedarEngine.attach(bundle, checked, settings);
    };
  }

  static load(bundle: PolicyBundle, settings: CedarSettings = DEFAULT_ENGINES_CONFIG.cedar): CedarEngine {
    const files = cedarFiles(bundle, (b) => b.toString('utf8'));
    const checked = checkCedarFiles(cedarWasm(), files, (code, message) => new VerdictError(code, message));
    return CedarEngine.attach(bundle, checked, settings);
  }

  /** The half that keeps state on this thread; the bundle has passed checkCedarFiles. */
  private static attach(bundle: PolicyBundle, { policies, entities, actions }: CheckedCedar, settings: CedarSettings): CedarEngine {
    const schema = readSchema(bundle);
    const id = `verdict:${bundle.sha256}`;
    check(cedarWasm().preparseSchema(id, schema), 'ERR_BUNDLE_SCHEMA', 'schema');
    check(cedarWasm().preparsePolicySet(id, { staticPolicies: policies }), 'ERR_BUNDLE_INVALID', 'policies.cedar');
    const mapping: CedarMappingOptions = {
      actions: actionMapping(bundle),
      declaredActions: new Set(actions),
      maxEntities: settings.maxEntitiesPerRequest,
    };
    const engine = new CedarEngine({ id, store: new CedarEntityStore(entities, settings.maxEntitiesPerRequest), mapping }, settings);
    engine.probe();
    return engine;
  }

  evaluate(input: InputDocument): PolicyResult {
    // Mapping and the wasm call both walk the input: inside the guard, so depth is a coded refusal.
    const answer = guardEngineStep('cedar', () => {
      const req = inputToCedarRequest(input, this.loaded.store, this.loaded.mapping);
      return cedarWasm().statefulIsAuthorized({
        ...req,
        preparsedSchemaName: this.loaded.id,
        preparsedPolicySetId: this.loaded.id,
        validateRequest: true,
      });
    });
    return this.toResult(answer);
  }

  close(): void {
    // cedar-wasm has no call to drop a preparsed set; a swapped-in bundle has its own id (its sha256).
  }

  private toResult(answer: AuthorizationAnswer): PolicyResult {
    if (answer.type === 'failure') throw new VerdictError('ERR_POLICY_EVAL', `cedar: ${messages(answer.errors)}`);
    const { decision, diagnostics } = answer.response;
    const allowed = decision === 'allow';
    const determining = [...diagnostics.reason].sort();
    const reasons = determining.length > 0 ? determining : [CEDAR_NO_MATCH];
    for (const e of diagnostics.errors) reasons.push(`error:${e.policyId}: ${e.error.message}`);
    const headers: KeyValue[] = [];
    const name = this.settings.reasonsHeader;
    if (name !== '') {
      // Policy ids are any text the bundle's author wrote (CR, LF, 100 KiB): the same bounds as a Rego header.
      const value = reasons.slice(0, determining.length || 1).join(',');
      checkHeader(name, value, 'reasonsHeader (determining policy ids)');
      headers.push([name, value]);
    }
    return { ...EMPTY_RESULT_FIELDS, allowed, headers, reasons };
  }

  /** One decision for a synthetic request at load: a schema that refuses verdict's request model fails here, not per request. */
  private probe(): void {
    const input: InputDocument = {
      attributes: { request: { http: { method: 'GET', path: '/', host: 'probe.invalid', headers: {} } } },
      parsed_path: [],
      parsed_query: {},
      parsed_body: null,
      truncated_body: false,
      version: { ext_authz: 'v3', encoding: 'protojson' },
      spiffe: { id: 'spiffe://probe.invalid/w', trust_domain: 'probe.invalid', path: '/w', svid_type: 'x509', expires_at: '' },
    };
    try {
      this.evaluate(input);
      delete input.spiffe;
      this.evaluate(input);
    } catch (err) {
      // A determining @id that no header can carry is the policies' fault, not the schema's.
      if (err instanceof VerdictError && err.code === 'ERR_POLICY_RESULT')
        throw new VerdictError('ERR_BUNDLE_INVALID', `policies.cedar: ${err.message}`);
      throw new VerdictError('ERR_BUNDLE_SCHEMA', `the Cedar schema does not accept verdict's request model: ${(err as Error).message}`);
    }
  }
}

function requireFile(bundle: PolicyBundle, path: string): Buffer {
  const f = bundle.files.get(path);
  if (!f) throw new VerdictError('ERR_BUNDLE_INVALID', `Cedar bundle has no /${path}`);
  return f;
}

/** The files checkCedarFiles reads, as text (for this thread) or as bytes (for the worker). */
function cedarFiles<T>(
  bundle: PolicyBundle,
  as: (b: Buffer) => T,
): { policies: T; schemaText: T | null; schemaJson: T | null; entities: T | null } {
  const optional = (name: string): T | null => {
    const f = bundle.files.get(name);
    return f && f.length > 0 ? as(f) : null;
  };
  const [textName, jsonName] = SCHEMA_FILES;
  return {
    policies: as(requireFile(bundle, 'policies.cedar')),
    schemaText: bundle.files.has(textName) ? as(bundle.files.get(textName) as Buffer) : null,
    schemaJson: bundle.files.has(textName) ? null : optional(jsonName),
    entities: optional('entities.json'),
  };
}

/** The schema as preparseSchema takes it; it has been checked (checkCedarFiles). */
function readSchema(bundle: PolicyBundle): Schema {
  const [textName, jsonName] = SCHEMA_FILES;
  const text = bundle.files.get(textName);
  return text ? text.toString('utf8') : (JSON.parse((bundle.files.get(jsonName) as Buffer).toString('utf8')) as Schema);
}

function actionMapping(bundle: PolicyBundle): Record<string, string> {
  const cedarMeta = verdictMetadata(bundle.manifest).cedar as { actions?: unknown } | undefined;
  const actions = cedarMeta?.actions;
  if (actions === undefined) return {};
  if (
    typeof actions !== 'object' ||
    actions === null ||
    Array.isArray(actions) ||
    !Object.values(actions).every((v) => typeof v === 'string')
  ) {
    throw new VerdictError('ERR_BUNDLE_INVALID', 'manifest metadata.verdict.cedar.actions must map HTTP methods to action ids');
  }
  return actions as Record<string, string>;
}

function check(
  answer: { type: 'success' } | { type: 'failure'; errors: DetailedError[] },
  code: 'ERR_BUNDLE_INVALID' | 'ERR_BUNDLE_SCHEMA',
  what: string,
): void {
  if (answer.type === 'failure') throw new VerdictError(code, `${what}: ${messages(answer.errors)}`);
}

function messages(errors: readonly DetailedError[]): string {
  return boundedList(errors.map((e) => e.message)) || 'unknown error';
}
