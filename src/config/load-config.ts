import type * as YAML from 'yaml';
import type { z } from 'zod';
import { VerdictError } from '../errors';
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

function readYAMLFile(file: string): Record<string, unknown> {
  const text = readConfiguredFile(file, 'config file', MAX_CONFIG_FILE_BYTES).toString('utf8');
  // Loaded only when there is a file to read: a default start has none (docs/memory.md).
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on demand
  const yaml = require('yaml') as typeof YAML;
  const lines = new yaml.LineCounter();
  const parsed = yaml.parseDocument(text, { lineCounter: lines, prettyErrors: false });
  // The code and the place only: yaml's message may quote the offending text, which may be a secret.
  const problem = parsed.errors[0];
  if (problem) {
    const { line, col } = lines.linePos(problem.pos[0]);
    throw new VerdictError('ERR_CONFIG', `config file ${file} is not valid YAML: ${problem.code} at line ${line}, column ${col}`);
  }
  const doc: unknown = parsed.toJS();
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new VerdictError('ERR_CONFIG', `config file ${file} must hold a mapping at the top level`);
  }
  return doc as Record<string, unknown>;
}

/** A key path for a message: each key cut to 64 characters, so a megabyte-long key is not echoed. */
function showPath(path: readonly string[]): string {
  return path.map((k) => (k.length > 64 ? `${k.slice(0, 64)}…` : k)).join('.');
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
