import type * as YAML from 'yaml';
import type { z } from 'zod';
import { clip, VerdictError } from '../errors';
import { readConfiguredFile } from '../policy/bundle-file-read';
import { configSchema, type Config } from './schema';

/** Environment variables verdict reads, each naming the config key it sets. */
export const ENV_KEYS: Readonly<Record<string, string>> = {
  VERDICT_GRPC_HOST: 'server.grpc.host',
  VERDICT_GRPC_PORT: 'server.grpc.port',
  VERDICT_GRPC_UNIX_SOCKET: 'server.grpc.unixSocket',
  VERDICT_HTTP_PORT: 'server.http.port',
  VERDICT_BUNDLE: 'policy.bundle',
  VERDICT_LOG_LEVEL: 'log.level',
  VERDICT_WORKER_SLOT: 'server.workerSlot',
  // SPIFFE Workload Endpoint §4: the standard variable naming the Workload API socket.
  SPIFFE_ENDPOINT_SOCKET: 'identity.workloadAPI.socket',
};

export interface ConfigSources {
  /** YAML file path. */
  file?: string | undefined;
  /** Environment (only the VERDICT_* keys in ENV_KEYS are read). */
  env?: Readonly<Record<string, string | undefined>>;
  /** `key.path=value` overrides from flags; applied last. */
  overrides?: readonly string[];
}

/** Loads file, then env, then flags; validates once; returns a deeply frozen Config. */
export function loadConfig(sources: ConfigSources = {}): Config {
  const raw: Record<string, unknown> = sources.file ? readYAMLFile(sources.file) : {};
  for (const [name, key] of Object.entries(ENV_KEYS)) {
    const value = sources.env?.[name];
    if (value !== undefined && value !== '') setPath(raw, key, coerceScalar(value), `env ${name}`);
  }
  for (const entry of sources.overrides ?? []) {
    const eq = entry.indexOf('=');
    // The value is never echoed: it may be a secret (bundles.source.authorization), and so may an entry without "=".
    if (eq <= 0) throw new VerdictError('ERR_CONFIG', 'flag --set expects key.path=value; an entry has no key before "="');
    setPath(raw, entry.slice(0, eq), coerceScalar(entry.slice(eq + 1)), '--set');
  }
  return validateConfig(raw);
}

export function validateConfig(raw: unknown): Config {
  refuseSpecialKeys(raw, []);
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw new VerdictError('ERR_CONFIG', formatIssues(parsed.error.issues));
  return deepFreeze(parsed.data);
}

/** Bound on the config file: a real one is a few KiB; YAML costs up to ~500 bytes of heap per byte parsed. */
export const MAX_CONFIG_FILE_BYTES = 1024 * 1024;
/** Deepest nesting of mappings and sequences; the schema's deepest key path is under 10. */
export const MAX_CONFIG_DEPTH = 64;
/** Aliases expanded into the config (yaml's own bound against "billion laughs"). */
const MAX_ALIASES = 100;

/**
 * YAML 1.2 with the core schema only: a `%YAML 1.1` directive changes nothing (no `yes` booleans, no `<<`
 * merges); no tag beyond the core ones (an unknown one, or a YAML 1.1 one like !!binary, is refused); plain
 * errors (a pretty one quotes the source line). Duplicate keys are found by checkMappings instead of yaml's
 * uniqueKeys, which compares each key with every other (minutes for a 1 MiB map) and compares typed values,
 * so `1:` and `"1":` would pass it and become one JS key.
 */
const YAML_OPTIONS: YAML.ParseOptions & YAML.DocumentOptions & YAML.SchemaOptions = {
  version: '1.2',
  schema: 'core',
  customTags: [],
  resolveKnownTags: false,
  merge: false,
  uniqueKeys: false,
  strict: true,
  prettyErrors: false,
};

function readYAMLFile(file: string): Record<string, unknown> {
  const bytes = readConfiguredFile(file, 'config file', MAX_CONFIG_FILE_BYTES);
  let text: string;
  try {
    // Not toString: it would turn bytes that are not UTF-8 into U+FFFD and take the file anyway.
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new VerdictError('ERR_CONFIG', `config file ${file} is not UTF-8 text`);
  }
  // Loaded only when there is a file to read: a default start has none (docs/memory.md).
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on demand
  const yaml = require('yaml') as typeof YAML;
  const lines = new yaml.LineCounter();
  // The code and the place only: yaml's message may quote the offending text, which may be a secret.
  const refuse = (why: string, offset: number): VerdictError => {
    const { line, col } = lines.linePos(offset);
    return new VerdictError('ERR_CONFIG', `config file ${file} is not valid YAML: ${why} at line ${line}, column ${col}`);
  };
  const tokens = [...new yaml.Parser(lines.addNewLine).parse(text)];
  // yaml composes nested collections by recursion and takes a stack overflow for its depth bound, but an
  // overflow inside V8's regexp compiler aborts the whole process: the depth is checked first, on the tokens.
  const deep = tooDeep(tokens);
  if (deep !== null) throw refuse(`nesting deeper than ${MAX_CONFIG_DEPTH} levels`, deep);
  const docs = [...new yaml.Composer(YAML_OPTIONS).compose(tokens, true, text.length)];
  if (docs.length > 1) throw refuse('a second document', docs[1]?.range[0] ?? 0);
  const doc = docs[0] as YAML.Document.Parsed;
  // Read as 1.2 whatever it says: a file written for 1.1 (yes/no booleans, << merges) would mean something else.
  if (doc.directives?.yaml.explicit && doc.directives.yaml.version !== '1.2')
    throw refuse(`a %YAML ${doc.directives.yaml.version} directive (verdict reads YAML 1.2)`, 0);
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) throw refuse(problem.code, problem.pos[0]);
  checkMappings(yaml, doc.contents, [], refuse);
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch {
    throw new VerdictError('ERR_CONFIG', `config file ${file} expands aliases past ${MAX_ALIASES}`);
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new VerdictError('ERR_CONFIG', `config file ${file} must hold a mapping at the top level`);
  }
  return value as Record<string, unknown>;
}

/** The offset of the first collection nested deeper than MAX_CONFIG_DEPTH, or null; iterative, as the parser is. */
function tooDeep(tokens: readonly YAML.CST.Token[]): number | null {
  type Node = { type?: string; offset?: number; key?: unknown; value?: unknown; items?: { key?: unknown; value?: unknown }[] };
  const pending: [unknown, number][] = tokens.map((t) => [t, 0]);
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [token, depth] = next as [Node | null | undefined, number];
    if (token === null || typeof token !== 'object') continue;
    const collection = token.type === 'block-map' || token.type === 'block-seq' || token.type === 'flow-collection';
    const inner = collection ? depth + 1 : depth;
    if (inner > MAX_CONFIG_DEPTH) return token.offset ?? 0;
    pending.push([token.key, inner], [token.value, inner]);
    for (const item of token.items ?? []) pending.push([item.key, inner], [item.value, inner]);
  }
  return null;
}

/**
 * Every mapping key is a scalar and names a key no other key of its mapping becomes once it is a JS key
 * (`1` and `"1"`, `~` and `""`): toJS would keep the last without a word. Depth is bounded already (tooDeep).
 */
function checkMappings(
  yaml: typeof YAML,
  node: unknown,
  path: readonly string[],
  refuse: (why: string, offset: number) => VerdictError,
): void {
  if (yaml.isSeq(node)) {
    node.items.forEach((item, i) => checkMappings(yaml, item, [...path, String(i)], refuse));
    return;
  }
  if (!yaml.isMap(node)) return;
  const seen = new Set<string>();
  for (const pair of node.items) {
    const key = pair.key;
    const offset = (yaml.isNode(key) ? key.range?.[0] : undefined) ?? node.range?.[0] ?? 0;
    if (!yaml.isScalar(key)) throw refuse(`a mapping key that is not a scalar${where(path)}`, offset);
    // The key toJS makes of the value (a null key is "").
    const name = key.value === null ? '' : String(key.value);
    if (seen.has(name)) throw refuse(`key "${showPath([...path, name])}" a second time`, offset);
    seen.add(name);
    checkMappings(yaml, pair.value, [...path, name], refuse);
  }
}

function where(path: readonly string[]): string {
  return path.length === 0 ? '' : ` in "${showPath(path)}"`;
}

/** A key path for a message: each key cut to 64 characters, so a megabyte-long key is not echoed. */
function showPath(path: readonly string[]): string {
  return path.map((k) => clip(k, 64)).join('.');
}

/**
 * `__proto__`, `constructor` and `prototype` mean something to JS objects, not to verdict: the schema's maps
 * (decisionLog.labels, sink headers, opaSigning.keys) would drop a `__proto__` key without a word. They are
 * refused wherever they appear in the raw document, naming where.
 */
function refuseSpecialKeys(value: unknown, path: readonly string[]): void {
  if (Array.isArray(value)) value.forEach((item, i) => refuseSpecialKeys(item, [...path, String(i)]));
  else if (value !== null && typeof value === 'object') {
    for (const [key, child] of Object.entries(value)) {
      if (FORBIDDEN_KEYS.has(key)) throw new VerdictError('ERR_CONFIG', `"${showPath([...path, key])}" is not a usable key`);
      refuseSpecialKeys(child, [...path, key]);
    }
  }
}

/** Scalars from env and flags: numbers, booleans and null are typed; everything else stays a string. */
function coerceScalar(value: string): unknown {
  if (value === 'true') return true;
  if (value === 'false') return false;
  if (value === 'null') return null;
  if (/^-?\d+$/.test(value)) return Number(value);
  return value;
}

const FORBIDDEN_KEYS = new Set(['__proto__', 'prototype', 'constructor']);

function setPath(target: Record<string, unknown>, key: string, value: unknown, origin: string): void {
  const parts = key.split('.');
  if (parts.some((p) => p === '' || FORBIDDEN_KEYS.has(p))) {
    throw new VerdictError('ERR_CONFIG', `${origin}: "${showPath(parts)}" is not a valid key path`);
  }
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (next === undefined) node[part] = {};
    else if (typeof next !== 'object' || next === null || Array.isArray(next)) {
      throw new VerdictError('ERR_CONFIG', `${origin}: "${showPath([part])}" in "${showPath(parts)}" is not a section`);
    }
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1] as string] = value;
}

/** Issues shown in one refusal; a file with thousands of bad keys gets a message of bounded size. */
const MAX_SHOWN_ISSUES = 10;

function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  const lines = issues.flatMap((issue) => {
    const path = issue.path.map(String);
    if (issue.code === 'unrecognized_keys') return issue.keys.map((k) => `unknown key "${showPath([...path, k])}"`);
    return [`"${path.length > 0 ? showPath(path) : '(top level)'}": ${issue.message}`];
  });
  const more = lines.length - MAX_SHOWN_ISSUES;
  return [...lines.slice(0, MAX_SHOWN_ISSUES), ...(more > 0 ? [`and ${more} more`] : [])].join('; ');
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
