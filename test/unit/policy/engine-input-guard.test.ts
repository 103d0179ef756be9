import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../../src/package-root';
import { readBundle } from '../../../src/policy/bundle-reader';
import { engineFactory } from '../../../src/policy/engine-registry';
import type { PolicyEngine } from '../../../src/policy/policy-engine';
import type { InputDocument } from '../../../src/request/input-document';
import { codeOfAsync } from '../../helpers/error-code';

/** An input whose parsed body is nested far deeper than JSON.stringify survives (a 12 KB body can do this). */
function deepInput(levels: number): InputDocument {
  let body: unknown = 1;
  for (let i = 0; i < levels; i++) body = { a: body };
  return {
    attributes: { request: { http: { method: 'POST', path: '/x', host: 'h', headers: {} } } },
    parsed_path: ['x'],
    parsed_query: {},
    parsed_body: body,
    truncated_body: false,
    version: { ext_authz: 'v3', encoding: 'protojson' },
  } as InputDocument;
}

const OPTIONS = { entrypoint: 'envoy/authz/allow', maxMemoryPages: 1024, recycleMemoryPages: 512 };

describe('every engine serialises its input inside its guard: depth is a coded request error, never ERR_INTERNAL', () => {
  const engines: Record<string, PolicyEngine> = {};
  beforeAll(async () => {
    for (const [kind, file] of [
      ['opa', 'default.tar.gz'],
      ['cedar', 'cedar-default.tar.gz'],
      ['wasm', 'mesh-acl.tar.gz'],
    ] as const) {
      const path = join(packageRoot(), 'dist', 'bundles', file);
      const bundle = await readBundle(readFileSync(path), path);
      engines[kind] = await engineFactory(bundle.engine)(bundle, OPTIONS);
    }
  });

  it.each(['opa', 'cedar', 'wasm'])('%s: 200,000 levels → a coded refusal of the request', async (kind) => {
    const code = await codeOfAsync(() => (engines[kind] as PolicyEngine).evaluate(deepInput(200_000)));
    // Cedar's request mapping reads no body (cedar-request.ts), so depth there never reaches the wasm call:
    // it decides; OPA and custom engines serialise the whole input and must refuse it with the code.
    expect(code).toBe(kind === 'cedar' ? 'no error' : 'ERR_POLICY_INPUT');
  });

  it.each(['opa', 'wasm'])('%s: still decides the next ordinary request', async (kind) => {
    expect(await codeOfAsync(() => (engines[kind] as PolicyEngine).evaluate(deepInput(3)))).toBe('no error');
  });
});
