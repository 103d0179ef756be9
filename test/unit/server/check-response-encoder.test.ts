import type * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { describe, expect, it } from 'vitest';
import { jsonToStruct } from '../../../src/request/protojson';
import { encodeCheckResponse, encodeCheckResponseMessage } from '../../../src/server/check-response-encoder';
import { AUTHORIZATION_SERVICE, envoyProtoIncludeDirs, loadAuthorizationProtos, PROTO_OPTIONS } from '../../../src/server/envoy-protos';

// The hand-written encoder against the reference: protobufjs reflection (proto-loader) over Envoy's own
// protos. Each case is encoded both ways and both are decoded by the reference; the results must match.
// Decoded twice: as verdict's clients decode it (proto-loader, no defaults, so field presence shows) and
// with defaults filled in.

const defs = loadSync('envoy/service/auth/v3/external_auth.proto', {
  ...PROTO_OPTIONS,
  defaults: true,
  includeDirs: envoyProtoIncludeDirs(),
});
const check = (defs[AUTHORIZATION_SERVICE] as grpc.ServiceDefinition).Check as grpc.MethodDefinition<unknown, unknown>;
const presence = (loadAuthorizationProtos()[AUTHORIZATION_SERVICE] as grpc.ServiceDefinition).Check as grpc.MethodDefinition<
  unknown,
  unknown
>;
const reference = (bytes: Buffer): unknown => check.responseDeserialize(bytes);

const header = (key: string, value: string, appendAction = 'APPEND_IF_EXISTS_OR_ADD'): Record<string, unknown> => ({
  header: { key, value },
  appendAction,
});

/** Deterministic pseudo-random JSON (nested objects, lists, floats, negatives, unicode, empty strings). */
function generatedJSON(seed: number, depth = 0): unknown {
  let s = seed;
  const next = (): number => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const leaf = (): unknown => [null, true, false, -1.5, 0, 2 ** 40, 'ünïcødé ✓', '', 'x'.repeat(300), 1e-300][Math.floor(next() * 10)];
  if (depth > 3) return leaf();
  const kind = next();
  if (kind < 0.4)
    return Object.fromEntries(
      Array.from({ length: 1 + Math.floor(next() * 4) }, (_, i) => [`k${i}-${Math.floor(next() * 99)}`, generatedJSON(s + i, depth + 1)]),
    );
  if (kind < 0.6) return Array.from({ length: Math.floor(next() * 4) }, (_, i) => generatedJSON(s + i, depth + 1));
  return leaf();
}

const CASES: { name: string; response: Record<string, unknown> }[] = [
  {
    name: 'allow with every OkHttpResponse field',
    response: {
      status: { code: 0 },
      okResponse: {
        headers: [
          { header: { key: 'x-user', value: 'alice' }, append: { value: false } },
          { header: { key: 'x-multi', value: 'b' }, append: { value: true } },
        ],
        headersToRemove: ['x-secret', ''],
        responseHeadersToAdd: [header('x-decided-by', 'verdict')],
        queryParametersToSet: [{ key: 'tenant', value: 't1' }],
        queryParametersToRemove: ['debug'],
      },
      dynamicMetadata: jsonToStruct({ decision_id: '7b0c6a3e-0000-4000-8000-000000000000', level: 3, ok: true, none: null }),
    },
  },
  {
    name: 'deny with status, headers and body',
    response: {
      status: { code: 7, message: 'DENIED_BY_POLICY' },
      deniedResponse: {
        status: { code: 429 },
        headers: [header('www-authenticate', 'Bearer'), header('x-verdict-reason', 'DENIED_BY_POLICY', 'OVERWRITE_IF_EXISTS_OR_ADD')],
        body: 'slow down ✋\n',
      },
      dynamicMetadata: jsonToStruct({ decision_id: 'd' }),
    },
  },
  {
    name: 'deny with an empty body and no headers',
    response: { status: { code: 7, message: 'ERR_INTERNAL' }, deniedResponse: { status: { code: 500 }, headers: [], body: '' } },
  },
  { name: 'allow with an empty OkHttpResponse', response: { status: { code: 0 }, okResponse: {} } },
  ...Array.from({ length: 20 }, (_, i) => ({
    name: `generated dynamic metadata #${i}`,
    response: {
      status: { code: 0 },
      okResponse: {},
      dynamicMetadata: jsonToStruct({ decision_id: String(i), data: generatedJSON(i + 1) }),
    },
  })),
];

describe('encodeCheckResponse', () => {
  it.each(CASES)('$name decodes to what protobufjs encodes', ({ response }) => {
    const ours = encodeCheckResponse(response);
    const theirs = check.responseSerialize(response);
    expect(reference(ours)).toEqual(reference(theirs));
    expect(presence.responseDeserialize(ours)).toEqual(presence.responseDeserialize(theirs));
    const framed = encodeCheckResponseMessage(response);
    expect(framed[0]).toBe(0);
    expect(framed.readUInt32BE(1)).toBe(ours.length);
    expect(framed.subarray(5)).toEqual(ours);
  });

  it('returns buffers that later encodes do not overwrite (one scratch buffer serves every call)', () => {
    // Bodies whose lengths need 1-, 2- and 3-byte varints; the 20,000-byte one outgrows the scratch buffer.
    const responses = [5, 300, 20_000, 7].map((n) => ({
      status: { code: 7, message: 'DENIED_BY_POLICY' },
      deniedResponse: { status: { code: 403 }, headers: [header('x-n', String(n))], body: 'b'.repeat(n) },
      dynamicMetadata: jsonToStruct({ decision_id: `id-${n}` }),
    }));
    const encoded = responses.map((r) => encodeCheckResponse(r));
    const snapshots = encoded.map((b) => Buffer.from(b));
    for (const r of responses) encodeCheckResponse(r);
    encoded.forEach((b, i) => {
      expect(b).toEqual(snapshots[i]);
      expect(reference(b)).toEqual(reference(check.responseSerialize(responses[i])));
    });
  });

  it.each([
    { name: 'an unknown top-level field', response: { status: { code: 0 }, okResponse: {}, extra: 1 } },
    { name: 'an unknown nested field', response: { okResponse: { headers: [{ header: { key: 'a', value: 'b', rawValue: 'x' } }] } } },
    { name: 'an unknown enum name', response: { deniedResponse: { headers: [header('a', 'b', 'SOMETIMES')] } } },
    { name: 'a non-array repeated field', response: { okResponse: { headersToRemove: 'x-secret' } } },
  ])('refuses $name with a TypeError (no field is dropped silently)', ({ response }) => {
    expect(() => encodeCheckResponse(response)).toThrow(TypeError);
  });
});
