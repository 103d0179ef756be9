import { createRequire } from 'node:module';
import type * as CedarWasm from '@cedar-policy/cedar-wasm/nodejs';
import type { DetailedError, EntityJson, Schema } from '@cedar-policy/cedar-wasm/nodejs';
import { VerdictError, type ErrorCode } from '../errors';
import { CEDAR_NAMESPACE } from './cedar-request';
import { runLoadWorker } from './engine-load-worker';

/** A Cedar bundle's files as text (schema: the .cedarschema text, else the .cedarschema.json text). */
export interface CedarFiles {
  policies: string;
  schemaText: string | null;
  schemaJson: string | null;
  entities: string | null;
}

/** A checked bundle: each policy's text by name (@id, else policyN), the parsed entities, the schema's actions. */
export interface CheckedCedar {
  policies: Record<string, string>;
  entities: EntityJson[];
  /** Action ids the schema declares in verdict's namespace. */
  actions: string[];
}

export interface CedarRefusal {
  code: 'ERR_BUNDLE_INVALID' | 'ERR_BUNDLE_SCHEMA' | 'ERR_BUNDLE_TOO_LARGE';
  message: string;
}

/** Most policies a Cedar bundle may hold: the event loop preparses the set in one call (~0.6 s for 10,000 here, 3.4 s for 30,000). */
const MAX_CEDAR_POLICIES = 10_000;
/**
 * Longest schema (.cedarschema or .cedarschema.json text): the event loop preparses it in one call, ~3 ms a
 * KiB of .cedarschema here (the JSON form is cheaper per character). The default schema is ~1.3 KiB.
 */
const MAX_CEDAR_SCHEMA_CHARS = 64 * 1024;
/** verdict's request model's namespace (cedar-request.ts CEDAR_NAMESPACE), local so the check worker has it too. */
const NAMESPACE = CEDAR_NAMESPACE;
/** Items of a list of Cedar errors a message names, and characters of each: a refusal never carries MiBs of bundle text. */
const LISTED_ITEMS = 10;
const LISTED_ITEM_CHARS = 300;

/** `items` joined for a message: the first LISTED_ITEMS, each cut to LISTED_ITEM_CHARS, then how many more. */
export function boundedList(items: readonly string[]): string {
  const cut = (t: string): string => (t.length > LISTED_ITEM_CHARS ? `${t.slice(0, LISTED_ITEM_CHARS)}…` : t);
  const shown = items.slice(0, LISTED_ITEMS).map(cut).join('; ');
  return items.length > LISTED_ITEMS ? `${shown}; … and ${items.length - LISTED_ITEMS} more` : shown;
}

/**
 * Everything about a Cedar bundle that can be checked without keeping state: the policy set parses, has no
 * templates and no two policies with one @id, validates against the schema in strict mode, and the entities
 * parse against the schema (which refuses cycles in the hierarchy). Answers each policy's text keyed by its
 * name (@id, else policyN), the form the event loop preparses: cedar-wasm names the policies of a set by
 * those keys only in this form (a set given as one text, or as JSON policies, is named policy0, policy1, …);
 * and the parsed entities.
 *
 * Self-contained but for boundedList and the constants above (the check worker's source defines those
 * too, so this function's text runs there): cedar-wasm and the way to make a refusal are handed in. On this machine it takes ~0.9 s for 1,000 policies
 * (parsing each policy again for its annotations, and strict validation), which is why the server runs it
 * off the event loop.
 */
export function checkCedarFiles(
  cedar: typeof CedarWasm,
  files: CedarFiles,
  refusal: (code: CedarRefusal['code'], message: string) => unknown,
): CheckedCedar {
  const messages = (errors: readonly DetailedError[]): string => boundedList(errors.map((e) => e.message)) || 'unknown error';
  const parts = cedar.policySetTextToParts(files.policies);
  if (parts.type === 'failure') throw refusal('ERR_BUNDLE_INVALID', `policies.cedar: ${messages(parts.errors)}`);
  if (parts.policy_templates.length > 0) throw refusal('ERR_BUNDLE_INVALID', 'policies.cedar: templates are not supported');
  if (parts.policies.length > MAX_CEDAR_POLICIES) {
    throw refusal('ERR_BUNDLE_TOO_LARGE', `policies.cedar holds ${parts.policies.length} policies (at most ${MAX_CEDAR_POLICIES})`);
  }
  // No prototype: an @id("__proto__") is then an own key like any other. On a plain object the assignment
  // below would set the prototype instead (a string is ignored), silently dropping that policy from the set.
  const named: Record<string, string> = Object.create(null) as Record<string, string>;
  parts.policies.forEach((policy, i) => {
    const json = cedar.policyToJson(policy);
    if (json.type === 'failure') throw refusal('ERR_BUNDLE_INVALID', `policies.cedar: ${messages(json.errors)}`);
    const id = json.json.annotations?.id ?? `policy${i}`;
    if (Object.hasOwn(named, id)) throw refusal('ERR_BUNDLE_INVALID', `policies.cedar: two policies have @id("${id}")`);
    named[id] = policy;
  });
  const schemaChars = (files.schemaText ?? files.schemaJson ?? '').length;
  if (schemaChars > MAX_CEDAR_SCHEMA_CHARS) {
    throw refusal('ERR_BUNDLE_TOO_LARGE', `the schema has ${schemaChars} characters (at most ${MAX_CEDAR_SCHEMA_CHARS})`);
  }
  let schema: Schema;
  if (files.schemaText !== null) schema = files.schemaText;
  else if (files.schemaJson !== null) {
    try {
      schema = JSON.parse(files.schemaJson) as Schema;
    } catch (err) {
      throw refusal('ERR_BUNDLE_SCHEMA', `schema.cedarschema.json: ${(err as Error).message}`);
    }
  } else {
    throw refusal(
      'ERR_BUNDLE_SCHEMA',
      'Cedar bundle needs /schema.cedarschema or /schema.cedarschema.json (policies are validated against it)',
    );
  }
  const answer = cedar.validate({ schema, policies: { staticPolicies: named }, validationSettings: { mode: 'strict' } });
  if (answer.type === 'failure') throw refusal('ERR_BUNDLE_SCHEMA', `schema: ${messages(answer.errors)}`);
  if (answer.validationErrors.length > 0) {
    const list = boundedList(answer.validationErrors.map((e) => `${e.policyId}: ${e.error.message}`));
    throw refusal('ERR_BUNDLE_SCHEMA', `policies do not validate against the schema (strict): ${list}`);
  }
  // The declared actions, read here too: the schema's JSON form takes the event loop seconds for a large schema.
  const json = typeof schema === 'string' ? cedar.schemaToJson(schema) : { type: 'success' as const, json: schema };
  if (json.type === 'failure') throw refusal('ERR_BUNDLE_SCHEMA', `schema: ${messages(json.errors)}`);
  const ns = Object.hasOwn(json.json, NAMESPACE) ? json.json[NAMESPACE] : undefined;
  if (!ns) throw refusal('ERR_BUNDLE_SCHEMA', `the schema must declare namespace ${NAMESPACE} (verdict's request model)`);
  const actions = Object.keys(ns.actions ?? {});
  let entities: unknown = [];
  if (files.entities !== null) {
    try {
      entities = JSON.parse(files.entities);
    } catch (err) {
      throw refusal('ERR_BUNDLE_INVALID', `entities.json: ${(err as Error).message}`);
    }
    if (!Array.isArray(entities)) throw refusal('ERR_BUNDLE_INVALID', 'entities.json must be an array of entities');
    const parsed = cedar.checkParseEntities({ entities: entities as EntityJson[], schema });
    if (parsed.type === 'failure') throw refusal('ERR_BUNDLE_SCHEMA', `entities.json: ${messages(parsed.errors)}`);
  }
  return { policies: named, entities: entities as EntityJson[], actions };
}

const CHECK_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const cedar = require(workerData.cedarPath);
const LISTED_ITEMS = ${LISTED_ITEMS};
const LISTED_ITEM_CHARS = ${LISTED_ITEM_CHARS};
const MAX_CEDAR_POLICIES = ${MAX_CEDAR_POLICIES};
const MAX_CEDAR_SCHEMA_CHARS = ${MAX_CEDAR_SCHEMA_CHARS};
const NAMESPACE = ${JSON.stringify(NAMESPACE)};
const boundedList = (${boundedList.toString()});
const checkCedarFiles = (${checkCedarFiles.toString()});
const text = (ab) => (ab === null ? null : Buffer.from(ab).toString('utf8'));
const w = workerData;
const files = { policies: text(w.policies), schemaText: text(w.schemaText), schemaJson: text(w.schemaJson), entities: text(w.entities) };
try {
  const { policies, entities, actions } = checkCedarFiles(cedar, files, (code, message) => ({ code, message }));
  // The entities in slices, one message each: the event loop deserializes one slice per turn.
  for (let i = 0; i < entities.length; i += workerData.entitiesPerMessage) {
    parentPort.postMessage({ entities: entities.slice(i, i + workerData.entitiesPerMessage) });
  }
  parentPort.postMessage({ policies, actions });
} catch (err) {
  parentPort.postMessage({ refusal: err && typeof err.code === 'string' ? err : { code: 'ERR_BUNDLE_INVALID', message: String(err && err.message) } });
}
`;

const cedarPath = createRequire(__filename).resolve('@cedar-policy/cedar-wasm/nodejs');
/** About 1–3 ms of structured-clone deserialization on the event loop per message here. */
const ENTITIES_PER_MESSAGE = 1000;

/** The bytes of each file, as the worker gets them. */
export type CedarFileBytes = { [K in keyof CedarFiles]: Uint8Array | null };

/**
 * `checkCedarFiles` in a throw-away worker with a deadline: a refused Cedar bundle costs the event loop
 * copies of its files (a slice per turn) and nothing else, and one that takes too long is refused
 * (ERR_BUNDLE_LOAD_TIMEOUT) and its worker terminated.
 */
export function checkCedarOffLoop(bytes: CedarFileBytes, timeoutMs: number): Promise<CheckedCedar> {
  const entities: EntityJson[] = [];
  return runLoadWorker<CheckedCedar>({
    source: CHECK_SOURCE,
    workerData: { cedarPath, entitiesPerMessage: ENTITIES_PER_MESSAGE },
    files: bytes,
    resourceLimits: { maxOldGenerationSizeMb: 512, maxYoungGenerationSizeMb: 32 },
    timeoutMs,
    what: "the Cedar bundle's check",
    onMessage: (message, finish) => {
      const m = message as { entities: EntityJson[] } | { policies: Record<string, string>; actions: string[] } | { refusal: CedarRefusal };
      if ('entities' in m) {
        for (const e of m.entities) entities.push(e);
      } else if ('refusal' in m) finish(new VerdictError(m.refusal.code as ErrorCode, m.refusal.message));
      else finish({ value: { policies: m.policies, entities, actions: m.actions } });
    },
  });
}
