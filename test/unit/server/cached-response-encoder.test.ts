import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Decision } from '../../../src/decision/decision';
import { EMPTY_RESULT_FIELDS, type PolicyResult } from '../../../src/policy/policy-result';
import { decisionToCheckResponse, type ResponseOptions } from '../../../src/server/check-response';
import { encodeCheckResponseMessage } from '../../../src/server/check-response-encoder';
import { CachedResponseEncoder } from '../../../src/server/cached-response-encoder';

// A cache hit's response comes from a per-entry template with the id written in: the bytes must be exactly
// what encoding the decision from scratch gives, hit after hit, for every response shape.

const OPTIONS: ResponseOptions = { reasonHeader: 'x-verdict-reason', exposeReason: true };
const reference = (d: Decision): Buffer => encodeCheckResponseMessage(decisionToCheckResponse(d, OPTIONS));

const allowResult: PolicyResult = {
  ...EMPTY_RESULT_FIELDS,
  allowed: true,
  headers: [
    ['x-user', 'alice'],
    ['x-user', 'bob'],
  ],
  responseHeadersToAdd: [['x-decided-by', 'verdict']],
  queryParametersToSet: [['tenant', 't1']],
  dynamicMetadata: { level: 3, tags: ['a', 'ü'], nested: { ok: true } },
};
const denyResult: PolicyResult = {
  ...EMPTY_RESULT_FIELDS,
  allowed: false,
  httpStatus: 401,
  body: 'no ✋',
  headers: [['www-authenticate', 'Bearer']],
};

const cachedDecision = (result: PolicyResult, extra: Partial<Decision> = {}): Decision => ({
  id: randomUUID(),
  allowed: result.allowed,
  reason: result.allowed ? 'ALLOWED' : 'DENIED_BY_POLICY',
  httpStatus: result.allowed ? 200 : (result.httpStatus ?? 403),
  result,
  cached: true,
  ...extra,
});

const uncached = (result: PolicyResult): Decision => {
  const { cached: _, ...d } = cachedDecision(result);
  return d;
};

const CASES: { name: string; decision: () => Decision }[] = [
  { name: 'allow with headers, query and nested metadata', decision: () => cachedDecision(allowResult) },
  { name: 'policy deny with status, body and the reason header', decision: () => cachedDecision(denyResult) },
  { name: 'dry-run deny (sent as an allow)', decision: () => cachedDecision(denyResult, { dryRun: true }) },
  {
    name: 'metadata holding the template probe id itself (falls back to fresh encoding)',
    decision: () =>
      cachedDecision({
        ...allowResult,
        dynamicMetadata: { a: '00000000-0000-4000-8000-000000000000', b: 'ffffffff-ffff-4fff-bfff-ffffffffffff' },
      }),
  },
  {
    name: 'not from the cache',
    decision: () => {
      const { cached: _, ...fresh } = cachedDecision(allowResult);
      return fresh;
    },
  },
  // Results that add nothing to the response share one template per shape, cached or not.
  { name: 'an evaluated allow that adds nothing', decision: () => uncached({ ...EMPTY_RESULT_FIELDS, allowed: true }) },
  {
    name: 'an evaluated deny that adds nothing, with its own status',
    decision: () => uncached({ ...EMPTY_RESULT_FIELDS, allowed: false, httpStatus: 401, body: '' }),
  },
  {
    name: 'an evaluated dry-run deny that adds nothing',
    decision: () => ({ ...uncached({ ...EMPTY_RESULT_FIELDS, allowed: false }), dryRun: true }),
  },
  {
    name: 'a refusal with no result',
    decision: () => ({ id: randomUUID(), allowed: false, reason: 'ERR_REQUEST_MALFORMED', httpStatus: 400 }),
  },
  {
    name: 'a parse-error refusal (its message is in the response)',
    decision: () => ({
      id: randomUUID(),
      allowed: false,
      reason: 'ERR_REQUEST_PARSE',
      httpStatus: 400,
      parseError: 'invalid URL escape "%zz"',
    }),
  },
];

describe('CachedResponseEncoder', () => {
  for (const c of CASES) {
    it(`${c.name}: every hit's bytes equal a fresh encoding of that decision`, () => {
      const encoder = new CachedResponseEncoder(OPTIONS);
      const first = c.decision();
      const seen = new Set<string>();
      for (let i = 0; i < 5; i++) {
        const d = { ...first, id: randomUUID() };
        const out = encoder.encode(d);
        expect(out.equals(reference(d))).toBe(true);
        expect(out.includes(d.id, 0, 'latin1')).toBe(true);
        seen.add(out.toString('hex'));
      }
      expect(seen.size).toBe(5);
    });
  }

  it('the same cached result with another decision shape (a changed reason) is encoded for that shape', () => {
    const encoder = new CachedResponseEncoder(OPTIONS);
    const deny = cachedDecision(denyResult);
    expect(encoder.encode(deny).equals(reference(deny))).toBe(true);
    const other = { ...deny, id: randomUUID(), reason: 'ERR_POLICY_TIMEOUT' as const, httpStatus: 500 };
    const out = encoder.encode(other);
    expect(out.equals(reference(other))).toBe(true);
    expect(out.includes('ERR_POLICY_TIMEOUT')).toBe(true);
  });

  it('results that add nothing, with and without a result, allowed or not, never share bytes across shapes', () => {
    const encoder = new CachedResponseEncoder(OPTIONS);
    const decisions: Decision[] = [
      uncached({ ...EMPTY_RESULT_FIELDS, allowed: true }),
      uncached({ ...EMPTY_RESULT_FIELDS, allowed: false }),
      { id: randomUUID(), allowed: false, reason: 'DENIED_BY_POLICY', httpStatus: 403 },
      { id: randomUUID(), allowed: false, reason: 'ERR_POLICY_TIMEOUT', httpStatus: 500 },
      // Past the bound on shape templates (64): still exact, encoded afresh.
      ...Array.from({ length: 80 }, (_, i) => uncached({ ...EMPTY_RESULT_FIELDS, allowed: false, httpStatus: 400 + i })),
    ];
    for (let round = 0; round < 2; round++)
      for (const d of decisions) {
        const again = { ...d, id: randomUUID() };
        expect(encoder.encode(again).equals(reference(again))).toBe(true);
      }
  });

  it('a template returns a fresh buffer each time (a sent response is never rewritten by a later hit)', () => {
    const encoder = new CachedResponseEncoder(OPTIONS);
    const a = cachedDecision(allowResult);
    const first = encoder.encode(a);
    const copy = Buffer.from(first);
    encoder.encode({ ...a, id: randomUUID() });
    expect(first.equals(copy)).toBe(true);
  });
});
