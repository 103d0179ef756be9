import type { Context, EntityJson, EntityUidJson } from '@cedar-policy/cedar-wasm/nodejs';
import { VerdictError } from '../errors';
import type { InputDocument } from '../request/input-document';
import { entityKey, type CedarEntityStore } from './cedar-entity-store';

/** verdict's Cedar request model: entity types live in this namespace (docs/engines.md). */
export const CEDAR_NAMESPACE = 'Verdict';
export const CEDAR_TYPES = Object.freeze({
  workload: `${CEDAR_NAMESPACE}::Workload`,
  anonymous: `${CEDAR_NAMESPACE}::Anonymous`,
  trustDomain: `${CEDAR_NAMESPACE}::TrustDomain`,
  route: `${CEDAR_NAMESPACE}::Route`,
  host: `${CEDAR_NAMESPACE}::Host`,
  pathPrefix: `${CEDAR_NAMESPACE}::PathPrefix`,
  headers: `${CEDAR_NAMESPACE}::Headers`,
  action: `${CEDAR_NAMESPACE}::Action`,
});
export const ANONYMOUS_ID = 'anonymous';
/** The action for an HTTP method the schema does not declare (when the schema declares it). */
export const OTHER_ACTION = 'OTHER';

/**
 * Most characters of stored entities (as JSON) one request may pass: cedar-wasm parses them on every call,
 * ~25 ms a MiB here, so an entity with a megabyte attribute would cost that on every request that reaches it.
 */
export const MAX_REQUEST_ENTITY_CHARS = 256 * 1024;

/** Path prefixes looked up as PathPrefix parents: bounded so a path of many segments costs no more. */
const MAX_PREFIX_SEGMENTS = 16;

export interface CedarRequest {
  principal: EntityUidJson;
  action: EntityUidJson;
  resource: EntityUidJson;
  context: Context;
  entities: EntityJson[];
}

export interface CedarMappingOptions {
  /** HTTP method → action id (manifest metadata.verdict.cedar.actions); else the method itself. */
  actions: Readonly<Record<string, string>>;
  /** Action ids the schema declares. */
  declaredActions: ReadonlySet<string>;
  maxEntities: number;
}

interface HttpAttrs {
  method: string;
  path: string;
  host: string;
  scheme: string;
  protocol: string;
  headers: Record<string, string>;
}

/**
 * ext_authz input document → one Cedar request. The principal is the *verified* SPIFFE ID only
 * (input.spiffe, set by the identity step), never a header or Envoy's source principal, which travel in
 * context. Entities: the derived principal, resource and headers plus the reach of their parents.
 */
export function inputToCedarRequest(input: InputDocument, store: CedarEntityStore, options: CedarMappingOptions): CedarRequest {
  const http = httpAttrs(input);
  const { path, query } = splitPath(http.path);
  const entities: EntityJson[] = [];
  const seen = new Set<string>();
  const add = (list: readonly EntityJson[]): void => {
    for (const e of list) {
      const uid = '__entity' in e.uid ? e.uid.__entity : e.uid;
      const key = entityKey(uid.type, uid.id);
      if (seen.has(key)) continue;
      seen.add(key);
      entities.push(e);
    }
  };

  const principal = principalEntity(input, store);
  const resource = resourceEntity(http.host, path, store);
  const headersUid = { type: CEDAR_TYPES.headers, id: 'request' };
  add([principal, resource, { uid: headersUid, attrs: {}, parents: [], tags: http.headers }]);
  // Summed per parent's reach, so an ancestor shared by two parents counts twice: a bound, not a measure.
  let chars = 0;
  for (const p of [...principal.parents, ...resource.parents]) {
    const { type, id } = '__entity' in p ? p.__entity : p;
    add(store.reach(type, id));
    chars += store.reachChars(type, id);
  }
  if (entities.length > options.maxEntities) {
    throw new VerdictError('ERR_POLICY_EVAL', `request reaches ${entities.length} Cedar entities (max ${options.maxEntities})`);
  }
  if (chars > MAX_REQUEST_ENTITY_CHARS) {
    throw new VerdictError('ERR_POLICY_EVAL', `request reaches ${chars} characters of Cedar entities (max ${MAX_REQUEST_ENTITY_CHARS})`);
  }
  return {
    principal: principal.uid,
    action: { type: CEDAR_TYPES.action, id: actionId(http.method, options) },
    resource: resource.uid,
    context: {
      authenticated: input.spiffe !== undefined,
      headers: { __entity: headersUid },
      method: http.method,
      scheme: http.scheme,
      protocol: http.protocol,
      query,
      sourceAddress: sourceAddress(input),
      sourcePrincipal: input.source_principal ?? '',
      svidType: input.spiffe?.svid_type ?? '',
    },
    entities,
  };
}

function principalEntity(input: InputDocument, store: CedarEntityStore): EntityJson & { uid: { type: string; id: string } } {
  const spiffe = input.spiffe;
  if (!spiffe) return { uid: { type: CEDAR_TYPES.anonymous, id: ANONYMOUS_ID }, attrs: {}, parents: [] };
  // Memberships come from entities.json (the stored entity of the same id); facts come from verification.
  const parents: EntityUidJson[] = [...store.parentsOf(CEDAR_TYPES.workload, spiffe.id)];
  parents.push({ type: CEDAR_TYPES.trustDomain, id: spiffe.trust_domain });
  return {
    uid: { type: CEDAR_TYPES.workload, id: spiffe.id },
    attrs: { spiffeId: spiffe.id, trustDomain: spiffe.trust_domain, path: spiffe.path, svidType: spiffe.svid_type },
    parents,
  };
}

function resourceEntity(host: string, path: string, store: CedarEntityStore): EntityJson & { uid: { type: string; id: string } } {
  const parents: EntityUidJson[] = [{ type: CEDAR_TYPES.host, id: host }];
  let end = 0;
  for (let i = 0; i < MAX_PREFIX_SEGMENTS; i++) {
    end = path.indexOf('/', end + 1);
    const prefix = end === -1 ? path : path.slice(0, end);
    if (prefix.length > 1 && store.has(CEDAR_TYPES.pathPrefix, prefix)) parents.push({ type: CEDAR_TYPES.pathPrefix, id: prefix });
    if (end === -1) break;
  }
  return { uid: { type: CEDAR_TYPES.route, id: `${host}${path}` }, attrs: { host, path }, parents };
}

function actionId(method: string, options: CedarMappingOptions): string {
  // Own keys only: a method named "constructor" or "__proto__" is that method, not an Object.prototype member.
  const mapped = Object.hasOwn(options.actions, method) ? (options.actions[method] as string) : method;
  if (options.declaredActions.has(mapped)) return mapped;
  if (options.declaredActions.has(OTHER_ACTION)) return OTHER_ACTION;
  throw new VerdictError('ERR_POLICY_EVAL', `HTTP method ${JSON.stringify(method)} maps to no action the Cedar schema declares`);
}

/** The request path as sent, without its query or fragment (the default Rego policy's request_path). */
function splitPath(raw: string): { path: string; query: string } {
  const hash = raw.indexOf('#');
  const noFragment = hash === -1 ? raw : raw.slice(0, hash);
  const q = noFragment.indexOf('?');
  return q === -1 ? { path: noFragment, query: '' } : { path: noFragment.slice(0, q), query: noFragment.slice(q + 1) };
}

function httpAttrs(input: InputDocument): HttpAttrs {
  const request = record(record(input.attributes).request);
  const http = record(request.http);
  // No prototype: a header named "__proto__" is a tag like any other (on a plain object it was dropped).
  const headers = Object.create(null) as Record<string, string>;
  for (const [k, v] of Object.entries(record(http.headers))) if (typeof v === 'string') headers[k.toLowerCase()] = v;
  return {
    method: str(http.method),
    path: str(http.path),
    host: str(http.host),
    scheme: str(http.scheme),
    protocol: str(http.protocol),
    headers,
  };
}

function sourceAddress(input: InputDocument): string {
  const socket = record(record(record(record(input.attributes).source).address).socketAddress);
  return str(socket.address);
}

function record(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}
