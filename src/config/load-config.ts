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
    if (eq <= 0) throw new VerdictError('ERR_CONFIG', `flag --set expects key.path=value, got "${entry}"`);
    setPath(raw, entry.slice(0, eq), coerceScalar(entry.slice(eq + 1)), `--set ${entry}`);
  }
  return validateConfig(raw);
}

export function validateConfig(raw: unknown): Config {
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw new VerdictError('ERR_CONFIG', formatIssues(parsed.error.issues));
  return deepFreeze(parsed.data);
}

/** Bound on the config file: a real one is a few KiB; YAML costs up to ~500 bytes of heap per byte parsed. */
export const MAX_CONFIG_FILE_BYTES = 1024 * 1024;

function readYAMLFile(file: string): Record<string, unknown> {
  const text = readConfiguredFile(file, 'config file', MAX_CONFIG_FILE_BYTES).toString('utf8');
  let doc: unknown;
  try {
    // Loaded only when there is a file to read: a default start has none (docs/memory.md).
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on demand
    doc = (require('yaml') as typeof YAML).parse(text);
  } catch (err) {
    throw new VerdictError('ERR_CONFIG', `config file ${file} is not valid YAML: ${(err as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new VerdictError('ERR_CONFIG', `config file ${file} must hold a mapping at the top level`);
  }
  return doc as Record<string, unknown>;
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
    throw new VerdictError('ERR_CONFIG', `${origin}: "${key}" is not a valid key path`);
  }
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (next === undefined) node[part] = {};
    else if (typeof next !== 'object' || next === null || Array.isArray(next)) {
      throw new VerdictError('ERR_CONFIG', `${origin}: "${part}" in "${key}" is not a section`);
    }
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1] as string] = value;
}

function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .map((issue) => {
      const key = issue.path.length > 0 ? issue.path.join('.') : '(top level)';
      if (issue.code === 'unrecognized_keys') {
        const prefix = issue.path.length > 0 ? `${key}.` : '';
        return `unknown key ${issue.keys.map((k) => `"${prefix}${k}"`).join(', ')}`;
      }
      return `"${key}": ${issue.message}`;
    })
    .join('; ');
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
