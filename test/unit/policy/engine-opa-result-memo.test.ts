import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Decision } from '../../../src/decision/decision';
import { readBundle } from '../../../src/policy/bundle-reader';
import { OPAEngine } from '../../../src/policy/engine-opa';
import { isSharedResult, type PolicyResult } from '../../../src/policy/policy-result';
import { CachedResponseEncoder } from '../../../src/server/cached-response-encoder';
import { decisionToCheckResponse, type ResponseOptions } from '../../../src/server/check-response';
import { encodeCheckResponseMessage } from '../../../src/server/check-response-encoder';
import { opaBuild } from '../../helpers/bundle-fixtures';
import { httpInput } from '../../helpers/input-document';

// The OPA engine keeps one result object per answer text (bounded): the answer is parsed and mapped once,
// and the response comes from a per-result template. Answers must stay exactly what the policy says.

// The answer depends on the path: /n/<k> names k in a header, /big/<k> adds a ~3 KB body (past the memo's
// text bound), /bad answers a non-boolean "allowed" (refused: ERR_POLICY_RESULT).
const REGO = `package envoy.authz

import rego.v1

path := input.attributes.request.http.path

allow := {"allowed": true, "headers": {"x-n": trim_prefix(path, "/n/")}} if startswith(path, "/n/")

allow := {"allowed": false, "http_status": 401, "body": concat("", [path, "${'x'.repeat(3000)}"])} if startswith(path, "/big/")

allow := {"allowed": "yes"} if path == "/bad"
`;

const OPTIONS = { entrypoint: 'envoy/authz/allow', maxMemoryPages: 4096, recycleMemoryPages: 256 };
const at = (path: string) => httpInput(path);

describe('OPA engine: one shared result per answer', () => {
  let engine: OPAEngine;
  beforeAll(async () => {
    const path = await opaBuild({ files: { 'authz.rego': REGO } });
    engine = (await OPAEngine.create(await readBundle(await readFile(path), path), OPTIONS)) as OPAEngine;
  }, 60_000);

  it('the same answer twice is one frozen, shared object; another answer is another', () => {
    const a = engine.evaluate(at('/n/1'));
    const b = engine.evaluate(at('/n/1'));
    const c = engine.evaluate(at('/n/2'));
    expect(a.headers).toEqual([['x-n', '1']]);
    expect(c.headers).toEqual([['x-n', '2']]);
    expect(b).toBe(a);
    expect(c).not.toBe(a);
    expect(isSharedResult(a) && Object.isFrozen(a)).toBe(true);
  });

  it('an answer longer than the bound is mapped afresh each time, and is not shared', () => {
    const a = engine.evaluate(at('/big/1'));
    const b = engine.evaluate(at('/big/1'));
    expect(a).toEqual(b);
    expect(a).not.toBe(b);
    expect(a.httpStatus).toBe(401);
    expect(isSharedResult(a)).toBe(false);
  });

  it('a refused answer is refused every time, never remembered', () => {
    for (let i = 0; i < 3; i++) expect(() => engine.evaluate(at('/bad'))).toThrow(expect.objectContaining({ code: 'ERR_POLICY_RESULT' }));
  });

  it('past the bound on answers, every answer is still its own (the memo is emptied and refilled)', () => {
    const first = new Map<number, PolicyResult>();
    for (let k = 0; k < 600; k++) first.set(k, engine.evaluate(at(`/n/k${k}`)));
    for (let k = 0; k < 600; k++) {
      const again = engine.evaluate(at(`/n/k${k}`));
      expect(again.headers).toEqual([['x-n', `k${k}`]]);
      expect(again).toEqual(first.get(k));
    }
  });

  it('an evaluated decision carrying a shared result (the template path) encodes byte for byte as a fresh encoding', () => {
    const options: ResponseOptions = { reasonHeader: 'x-verdict-reason', exposeReason: true };
    const encoder = new CachedResponseEncoder(options);
    const result = engine.evaluate(at('/n/tpl'));
    for (let i = 0; i < 3; i++) {
      const d: Decision = { id: randomUUID(), allowed: true, reason: 'ALLOWED', httpStatus: 200, result };
      const out = encoder.encode(d);
      expect(out.equals(encodeCheckResponseMessage(decisionToCheckResponse(d, options)))).toBe(true);
      expect(out.includes(d.id, 0, 'latin1')).toBe(true);
    }
  });
});
