import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { toolPath } from '../../src/cli/tools';
import { defaultBundlePath, packageRoot } from '../../src/package-root';
import { readBundle } from '../../src/policy/bundle-reader';
import { OPAEngine } from '../../src/policy/engine-opa';
import type { PolicyEngine } from '../../src/policy/policy-engine';
import { buildInputDocument, type InputDocument } from '../../src/request/input-document';
import type { CheckRequest } from '../../src/request/check-request';
import { tempDir } from '../helpers/verdict-harness';

// The same requests through the Rego source (real `opa eval`) and through the wasm bundle built from it
// must give the same decisions — the wasm compiler and opa-wasm SDK change nothing.

const FRONTEND = 'spiffe://example.org/ns/default/sa/frontend';
const BACKEND = 'spiffe://example.org/ns/default/sa/backend';
const BILLING = 'spiffe://example.org/ns/billing/sa/worker';
const EVIL = 'spiffe://evil.org/ns/default/sa/frontend';

type Case = [name: string, method: string, path: string, spiffeID: string | null, expectAllowed: boolean];

const CASES: Case[] = [
  ['probe GET healthz', 'GET', '/healthz', null, true],
  ['probe HEAD readyz', 'HEAD', '/readyz', null, true],
  ['probe POST healthz', 'POST', '/healthz', null, false],
  ['probe with query', 'GET', '/healthz?full=1', null, true],
  ['probe sub-path', 'GET', '/healthz/deep', null, false],
  ['public doc', 'GET', '/public/index.html', null, true],
  ['public nested', 'GET', '/public/a/b/c', null, true],
  ['public POST', 'POST', '/public/form', FRONTEND, false],
  ['frontend GET api', 'GET', '/api/orders', FRONTEND, true],
  ['frontend HEAD api nested', 'HEAD', '/api/orders/7/items', FRONTEND, true],
  ['frontend POST api', 'POST', '/api/orders', FRONTEND, false],
  ['frontend DELETE api', 'DELETE', '/api/orders/1', FRONTEND, false],
  ['frontend api root', 'GET', '/api', FRONTEND, false],
  ['backend GET api', 'GET', '/api/orders', BACKEND, false],
  ['anonymous GET api', 'GET', '/api/orders', null, false],
  ['evil trust domain', 'GET', '/api/orders', EVIL, false],
  ['billing POST invoices', 'POST', '/api/invoices', BILLING, true],
  ['billing PUT invoice', 'PUT', '/api/invoices/42', BILLING, true],
  ['billing POST invoice line', 'POST', '/api/invoices/42/lines', BILLING, false],
  ['billing GET invoices', 'GET', '/api/invoices', BILLING, false],
  ['billing other namespace', 'POST', '/api/invoices', 'spiffe://example.org/ns/shop/sa/worker', false],
  ['billing deeper sa', 'POST', '/api/invoices', 'spiffe://example.org/ns/billing/sa/worker/x', false],
  ['frontend cannot invoice', 'POST', '/api/invoices', FRONTEND, false],
  ['status authenticated', 'GET', '/status', BACKEND, true],
  ['status anonymous', 'GET', '/status', null, false],
  ['status POST', 'POST', '/status', BACKEND, false],
  ['admin anonymous', 'GET', '/admin', null, false],
  ['admin frontend', 'GET', '/admin/users', FRONTEND, false],
  ['admin over public glob', 'GET', '/admin/public/x', null, false],
  ['unknown path', 'GET', '/nothing', FRONTEND, false],
  ['encoded slash stays one segment', 'GET', '/public%2Fsecret', null, false],
  ['query does not extend path', 'GET', '/api?x=/api/orders', FRONTEND, false],
  ['lowercase method', 'get', '/healthz', null, false],
  ['root', 'GET', '/', FRONTEND, false],
];

function inputFor([, method, path, spiffeID]: Case): InputDocument {
  const req: CheckRequest = {
    attributes: {
      source: { address: { socketAddress: { address: '10.1.2.3', portValue: 40000 } } },
      request: { http: { method, path, host: 'api.example.org', headers: { ':path': path, ':method': method } } },
    },
  };
  const input = buildInputDocument(req, { maxHeaders: 100, maxParsedBodyBytes: 1024 });
  if (spiffeID) {
    const url = new URL(spiffeID);
    input.spiffe = { id: spiffeID, trust_domain: url.host, path: url.pathname, svid_type: 'x509', expires_at: '2030-01-01T00:00:00Z' };
  }
  return input;
}

describe('default policy: opa eval (Rego source) and opa-wasm (bundle) agree', () => {
  let engine: PolicyEngine;
  let regoResults: { allowed: boolean; reason?: string }[];

  beforeAll(async () => {
    const path = defaultBundlePath();
    engine = await OPAEngine.create(await readBundle(await readFile(path), path), {
      entrypoint: 'envoy/authz/allow',
      maxMemoryPages: 1024,
      recycleMemoryPages: 256,
    });
    // One `opa eval` over all inputs: the query evaluates the rule once per element, each `with input as` it.
    const inputFile = join(tempDir(), 'inputs.json');
    await writeFile(inputFile, JSON.stringify(CASES.map(inputFor)));
    const { stdout } = await promisify(execFile)(
      toolPath('opa'),
      [
        'eval',
        '--format',
        'json',
        '-b',
        join(packageRoot(), 'policies', 'default'),
        '-i',
        inputFile,
        '[r | some x in input; r := data.envoy.authz.allow with input as x]',
      ],
      { maxBuffer: 16 * 1024 * 1024 },
    );
    const out = JSON.parse(stdout) as { result: { expressions: { value: { allowed: boolean; reason?: string }[] }[] }[] };
    regoResults = out.result[0]?.expressions[0]?.value ?? [];
  });

  it('covers at least 30 cases', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(30);
    expect(regoResults).toHaveLength(CASES.length);
  });

  CASES.forEach((c, i) => {
    it(c[0], async () => {
      const wasm = await engine.evaluate(inputFor(c));
      const rego = regoResults[i];
      expect(wasm.allowed).toBe(rego?.allowed);
      expect(wasm.reasons[0]).toBe(rego?.reason);
      expect(wasm.allowed).toBe(c[4]);
    });
  });
});
