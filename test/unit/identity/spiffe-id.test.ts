import { describe, expect, it } from 'vitest';
import { VerdictError } from '../../../src/errors';
import { matchesSPIFFEIDPattern, parseSPIFFEID, parseTrustDomain } from '../../../src/identity/spiffe-id';

describe('parseSPIFFEID', () => {
  it.each([
    ['trust domain only', 'spiffe://example.org', 'example.org', ''],
    ['one segment', 'spiffe://example.org/web', 'example.org', '/web'],
    ['k8s style', 'spiffe://prod.acme-corp_1.io/ns/default/sa/api-v2', 'prod.acme-corp_1.io', '/ns/default/sa/api-v2'],
    ['path charset incl. upper case and dots', 'spiffe://td/A.b-C_9/..x', 'td', '/A.b-C_9/..x'],
  ])('accepts %s', (_name, value, trustDomain, path) => {
    expect(parseSPIFFEID(value)).toEqual({ id: value, trustDomain, path });
  });

  it.each([
    ['empty', ''],
    ['wrong scheme', 'https://example.org/web'],
    ['upper-case scheme', 'SPIFFE://example.org/web'],
    ['no authority', 'spiffe:///web'],
    ['upper-case trust domain', 'spiffe://Example.org/web'],
    ['port', 'spiffe://example.org:8443/web'],
    ['userinfo', 'spiffe://user@example.org/web'],
    ['query', 'spiffe://example.org/web?x=1'],
    ['fragment', 'spiffe://example.org/web#frag'],
    ['percent-encoded path', 'spiffe://example.org/we%20b'],
    ['percent-encoded trust domain', 'spiffe://ex%61mple.org/web'],
    ['trailing slash', 'spiffe://example.org/web/'],
    ['empty segment', 'spiffe://example.org//web'],
    ['dot segment', 'spiffe://example.org/./web'],
    ['dot-dot segment', 'spiffe://example.org/web/..'],
    ['bad path char', 'spiffe://example.org/we$b'],
    ['trust domain over 255 bytes', `spiffe://${'a'.repeat(256)}/web`],
    ['id over 2048 bytes', `spiffe://example.org/${'a'.repeat(2048)}`],
  ])('rejects %s with ERR_SPIFFE_ID_INVALID', (_name, value) => {
    let caught: unknown;
    try {
      parseSPIFFEID(value);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(VerdictError);
    expect((caught as VerdictError).code).toBe('ERR_SPIFFE_ID_INVALID');
  });

  it.each([
    ['exact', 'spiffe://td/envoy', 'spiffe://td/envoy', true],
    ['exact mismatch', 'spiffe://td/envoy2', 'spiffe://td/envoy', false],
    ['prefix glob', 'spiffe://td/ns/mesh/sa/envoy', 'spiffe://td/ns/mesh/*', true],
    ['glob does not match a sibling prefix', 'spiffe://td/ns/meshy/sa', 'spiffe://td/ns/mesh/*', false],
  ])('pattern %s', (_name, id, pattern, expected) => {
    expect(matchesSPIFFEIDPattern(id, pattern)).toBe(expected);
  });
});

describe('parseTrustDomain', () => {
  it.each([
    ['bare name', 'example.org', 'example.org'],
    ['SPIFFE ID form (SPIRE bundle map keys)', 'spiffe://example.org', 'example.org'],
  ])('accepts %s', (_name, value, expected) => {
    expect(parseTrustDomain(value)).toBe(expected);
  });

  it.each([
    ['upper case', 'Example.org'],
    ['port', 'example.org:443'],
    ['empty', ''],
  ])('rejects %s with ERR_SPIFFE_ID_INVALID', (_name, value) => {
    expect(() => parseTrustDomain(value)).toThrow(expect.objectContaining({ code: 'ERR_SPIFFE_ID_INVALID' }) as Error);
  });
});
