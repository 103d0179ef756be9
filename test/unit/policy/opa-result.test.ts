import { describe, expect, it } from 'vitest';
import { opaValueToResult } from '../../../src/policy/opa-result';
import { decisionToCheckResponse } from '../../../src/server/check-response';
import type { Decision } from '../../../src/decision/decision';

describe('Rego result → PolicyResult', () => {
  it('a boolean is allowed/denied with nothing else', () => {
    expect(opaValueToResult(true)).toMatchObject({ allowed: true, headers: [], reasons: [] });
    expect(opaValueToResult(false).allowed).toBe(false);
  });

  // internal/internal.go check: allow reads the upstream-changing fields, deny reads body and http_status.
  const full = {
    headers: [{ 'x-a': '1' }, { 'x-a': ['2', '3'] }],
    response_headers_to_add: { 'x-r': 'r' },
    request_headers_to_remove: ['cookie'],
    query_parameters_to_set: { t: ['1', '2'] },
    query_parameters_to_remove: ['debug'],
    body: 'no',
    http_status: 429,
    dynamic_metadata: { k: { nested: true } },
    reasons: ['rule-a', 7, 'rule-b'],
  };
  const headers = [
    ['x-a', '1'],
    ['x-a', '2'],
    ['x-a', '3'],
  ];

  it('an allow maps the allow fields and ignores body and http_status', () => {
    expect(opaValueToResult({ ...full, allowed: true })).toEqual({
      allowed: true,
      headers,
      responseHeadersToAdd: [['x-r', 'r']],
      requestHeadersToRemove: ['cookie'],
      queryParametersToSet: [
        ['t', '1'],
        ['t', '2'],
      ],
      queryParametersToRemove: ['debug'],
      dynamicMetadata: { k: { nested: true } },
      reasons: ['rule-a', 'rule-b'],
    });
  });

  it('a deny maps body, http_status, headers and metadata and ignores the allow-only fields', () => {
    expect(opaValueToResult({ ...full, allowed: false })).toEqual({
      allowed: false,
      headers,
      responseHeadersToAdd: [],
      requestHeadersToRemove: [],
      queryParametersToSet: [],
      queryParametersToRemove: [],
      body: 'no',
      httpStatus: 429,
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
    { name: 'status 451, not in envoy.type.v3.StatusCode', value: { allowed: false, http_status: 451 } },
    { name: 'status 418, not in envoy.type.v3.StatusCode', value: { allowed: false, http_status: 418 } },
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
  const opts = { reasonHeader: 'x-verdict-reason', exposeReason: true };

  it('allow: OkHttpResponse with set-then-append headers and decision_id metadata', () => {
    const res = decisionToCheckResponse(
      { ...base, result: opaValueToResult({ allowed: true, headers: { 'X-A': ['1', '2'] }, dynamic_metadata: { u: 'x' } }) },
      opts,
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
    const res = decisionToCheckResponse({ ...base, allowed: false, reason: 'ERR_POLICY_EVAL', httpStatus: 500 }, opts);
    expect(res).toMatchObject({
      status: { code: 7, message: 'ERR_POLICY_EVAL' },
      deniedResponse: { status: { code: 500 }, body: '', headers: [{ header: { key: 'x-verdict-reason', value: 'ERR_POLICY_EVAL' } }] },
    });
  });

  it('the reason header can be disabled', () => {
    const res = decisionToCheckResponse(
      { ...base, allowed: false, reason: 'DENIED_BY_POLICY', httpStatus: 403 },
      { reasonHeader: '', exposeReason: true },
    );
    expect((res.deniedResponse as { headers: unknown[] }).headers).toEqual([]);
  });

  it('exposeReason false drops both the reason header and the status message', () => {
    const deny = { ...base, allowed: false, reason: 'DENIED_BY_POLICY' as const, httpStatus: 403 };
    const res = decisionToCheckResponse(deny, { ...opts, exposeReason: false });
    expect(res.status).toEqual({ code: 7 });
    expect((res.deniedResponse as { headers: unknown[] }).headers).toEqual([]);
  });

  it('a dry-run deny goes out as a bare allow that keeps the metadata and decision_id', () => {
    const result = opaValueToResult({ allowed: false, body: 'no', headers: { 'x-d': '1' }, dynamic_metadata: { u: 'x' } });
    const res = decisionToCheckResponse(
      { ...base, allowed: false, reason: 'DENIED_BY_POLICY', httpStatus: 403, result, dryRun: true },
      opts,
    );
    expect(res).toEqual({
      status: { code: 0 },
      okResponse: {},
      dynamicMetadata: { fields: { u: { stringValue: 'x' }, decision_id: { stringValue: 'd-1' } } },
    });
  });

  it('a status outside envoy.type.v3.StatusCode never reaches the wire', () => {
    const res = decisionToCheckResponse({ ...base, allowed: false, reason: 'ERR_POLICY_EVAL', httpStatus: 451 }, opts);
    expect(res.deniedResponse).toMatchObject({ status: { code: 500 } });
  });
});
