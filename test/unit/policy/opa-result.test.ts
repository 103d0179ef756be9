import { describe, expect, it } from 'vitest';
import { opaValueToResult } from '../../../src/policy/opa-result';
import { decisionToCheckResponse } from '../../../src/server/check-response';
import type { Decision } from '../../../src/decision/decision';

describe('Rego result → PolicyResult', () => {
  it('a boolean is allowed/denied with nothing else', () => {
    expect(opaValueToResult(true)).toMatchObject({ allowed: true, headers: [], reasons: [] });
    expect(opaValueToResult(false).allowed).toBe(false);
  });

  it('maps every object field', () => {
    const r = opaValueToResult({
      allowed: false,
      headers: [{ 'x-a': '1' }, { 'x-a': ['2', '3'] }],
      response_headers_to_add: { 'x-r': 'r' },
      request_headers_to_remove: ['cookie'],
      query_parameters_to_set: { t: ['1', '2'] },
      query_parameters_to_remove: ['debug'],
      body: 'no',
      http_status: 451,
      dynamic_metadata: { k: { nested: true } },
      reasons: ['rule-a', 7, 'rule-b'],
    });
    expect(r).toEqual({
      allowed: false,
      headers: [
        ['x-a', '1'],
        ['x-a', '2'],
        ['x-a', '3'],
      ],
      responseHeadersToAdd: [['x-r', 'r']],
      requestHeadersToRemove: ['cookie'],
      queryParametersToSet: [
        ['t', '1'],
        ['t', '2'],
      ],
      queryParametersToRemove: ['debug'],
      body: 'no',
      httpStatus: 451,
      dynamicMetadata: { k: { nested: true } },
      reasons: ['rule-a', 'rule-b'],
    });
  });

  const invalid: { name: string; value: unknown }[] = [
    { name: 'null', value: null },
    { name: 'a number', value: 1 },
    { name: 'an array', value: [true] },
    { name: 'object without allowed', value: { headers: {} } },
    { name: 'allowed not boolean', value: { allowed: 'true' } },
    { name: 'header value a number', value: { allowed: true, headers: { a: 1 } } },
    { name: 'header list with a number', value: { allowed: true, headers: { a: ['x', 2] } } },
    { name: 'headers a string', value: { allowed: true, headers: 'a: b' } },
    { name: 'remove list not strings', value: { allowed: true, request_headers_to_remove: [1] } },
    { name: 'body not a string', value: { allowed: false, body: {} } },
    { name: 'status out of range', value: { allowed: false, http_status: 99 } },
    { name: 'status not an integer', value: { allowed: false, http_status: 403.5 } },
    { name: 'status a string', value: { allowed: false, http_status: '403' } },
    { name: 'metadata an array', value: { allowed: true, dynamic_metadata: [] } },
    { name: 'query params an array', value: { allowed: true, query_parameters_to_set: [] } },
  ];
  for (const c of invalid) {
    it(`refuses ${c.name} with ERR_POLICY_RESULT`, () => {
      expect(() => opaValueToResult(c.value)).toThrow(expect.objectContaining({ code: 'ERR_POLICY_RESULT' }));
    });
  }
});

describe('Decision → CheckResponse', () => {
  const base: Decision = { id: 'd-1', allowed: true, reason: 'ALLOWED', httpStatus: 200 };

  it('allow: OkHttpResponse with set-then-append headers and decision_id metadata', () => {
    const res = decisionToCheckResponse(
      { ...base, result: opaValueToResult({ allowed: true, headers: { 'X-A': ['1', '2'] }, dynamic_metadata: { u: 'x' } }) },
      { reasonHeader: 'x-verdict-reason' },
    );
    expect(res).toMatchObject({
      status: { code: 0 },
      okResponse: {
        headers: [
          { header: { key: 'X-A', value: '1' }, append: { value: false } },
          { header: { key: 'X-A', value: '2' }, append: { value: true } },
        ],
      },
      dynamicMetadata: { fields: { u: { stringValue: 'x' }, decision_id: { stringValue: 'd-1' } } },
    });
  });

  it('error deny: DeniedHttpResponse with the status and the reason header, no policy body', () => {
    const res = decisionToCheckResponse(
      { ...base, allowed: false, reason: 'ERR_POLICY_EVAL', httpStatus: 500 },
      { reasonHeader: 'x-verdict-reason' },
    );
    expect(res).toMatchObject({
      status: { code: 7, message: 'ERR_POLICY_EVAL' },
      deniedResponse: { status: { code: 500 }, body: '', headers: [{ header: { key: 'x-verdict-reason', value: 'ERR_POLICY_EVAL' } }] },
    });
  });

  it('the reason header can be disabled', () => {
    const res = decisionToCheckResponse({ ...base, allowed: false, reason: 'DENIED_BY_POLICY', httpStatus: 403 }, { reasonHeader: '' });
    expect((res.deniedResponse as { headers: unknown[] }).headers).toEqual([]);
  });
});
