import { describe, expect, it } from 'vitest';
import { decodeCheckRequest } from '../../../src/request/check-request-decoder';
import { expectedByPeerRules, generate, jsonName, loadCheckRequestType, reachableFields } from '../../helpers/envoy-proto-reference';

const LIMITS = { maxRequestBytes: 1 << 20, maxHeaders: 200, maxInputDepth: 64, maxRequestFields: 100_000 };
const VARIANTS = 6; // google.protobuf.Value has six kinds: six variants set every member of every oneof

/**
 * verdict's hand-written decoder against a reference built from the Envoy protos by protobufjs reflection,
 * on requests with EVERY field set. A field Envoy adds to the protos is generated, encoded and expected
 * here; a decoder that does not know it drops it, and this test fails.
 */
describe('CheckRequest decoder vs protobufjs reflection over the Envoy protos', () => {
  const type = loadCheckRequestType();

  for (let variant = 0; variant < VARIANTS; variant++) {
    it(`variant ${variant}: every field set decodes to the peer's protomap shape`, () => {
      const value = generate(type, variant);
      const bytes = Buffer.from(type.encode(type.fromObject(value)).finish());
      const decoded = decodeCheckRequest(bytes, LIMITS);
      expect(decoded.refusal).toBeUndefined();
      expect(decoded.message).toEqual(expectedByPeerRules(type, value));
    });
  }

  it('the generated requests together set every field reachable from CheckRequest', () => {
    const present = new Set<string>();
    const visit = (t: typeof type, v: Record<string, unknown>): void => {
      for (const f of t.fieldsArray) {
        if (v[f.name] === undefined) continue;
        present.add(`${t.fullName}.${f.name}`);
        const child = f.resolvedType;
        if (!(child && 'fieldsArray' in child)) continue;
        const items = f.map ? Object.values(v[f.name] as object) : f.repeated ? (v[f.name] as unknown[]) : [v[f.name]];
        for (const item of items) visit(child as typeof type, item as Record<string, unknown>);
      }
    };
    for (let variant = 0; variant < VARIANTS; variant++) visit(type, generate(type, variant));
    const missing = reachableFields(type).filter((f) => !present.has(f));
    expect(missing).toEqual([]);
    expect(reachableFields(type).length).toBeGreaterThan(40);
  });

  it('json names follow protoc (raw_body → rawBody, ipv4_compat → ipv4Compat)', () => {
    expect(jsonName('raw_body')).toBe('rawBody');
    expect(jsonName('ipv4_compat')).toBe('ipv4Compat');
    expect(jsonName('route_metadata_context')).toBe('routeMetadataContext');
  });
});
