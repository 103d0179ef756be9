import { describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/clock';
import { validateConfig } from '../../../src/config/load-config';
import { SPIFFEIdentityStep } from '../../../src/identity/spiffe-identity-step';
import { StaticBundleSource } from '../../../src/identity/static-bundle-source';
import type { VerdictError } from '../../../src/errors';

function configCode(identity: unknown): string | undefined {
  try {
    validateConfig({ identity });
  } catch (err) {
    return (err as VerdictError).code;
  }
  return undefined;
}

describe('identity config', () => {
  it('is off by default, so verdict starts without SPIRE', () => {
    const { identity } = validateConfig({});
    expect(identity.enabled).toBe(false);
    expect(identity.jwt.failureStatus).toBe(401);
    expect(identity.x509.failureStatus).toBe(403);
    // No intermediate source and no XFCC trust unless the operator turns them on.
    expect(identity.x509.intermediates).toEqual({ fromWorkloadAPI: false, trustXFCCChain: false, files: [] });
    expect(identity.x509.maxCandidates).toBe(32);
  });

  it.each([
    ['enabled without any trust source', { enabled: true }],
    [
      'mTLS without the Workload API',
      {
        enabled: true,
        staticBundles: [{ trustDomain: 'td', path: '/b.pem' }],
        mtls: { enabled: true, allowedCallers: ['spiffe://td/envoy'] },
      },
    ],
    ['mTLS without allowed callers', { enabled: true, workloadAPI: { socket: 'unix:///s' }, mtls: { enabled: true } }],
    [
      'an allowed caller that is not a SPIFFE ID',
      { enabled: true, workloadAPI: { socket: 'unix:///s' }, mtls: { enabled: true, allowedCallers: ['envoy'] } },
    ],
    ['HS256 among the algorithms', { jwt: { algorithms: ['HS256'] } }],
    [
      'intermediates from the Workload API without its socket',
      { enabled: true, staticBundles: [{ trustDomain: 'td', path: '/b.pem' }], x509: { intermediates: { fromWorkloadAPI: true } } },
    ],
    ['maxCandidates of 0', { x509: { maxCandidates: 0 } }],
    ['an unknown key', { enabled: true, workloadAPI: { socket: 'unix:///s' }, bogus: 1 }],
  ])('rejects %s with ERR_CONFIG', (_name, identity) => {
    expect(configCode(identity)).toBe('ERR_CONFIG');
  });
});

describe('trustEnvoyPrincipal', () => {
  const req = { attributes: { source: { principal: 'spiffe://example.org/ns/mesh/sa/envoy' } } };
  const step = (trust: boolean): SPIFFEIdentityStep =>
    new SPIFFEIdentityStep({
      config: validateConfig({
        identity: { enabled: true, staticBundles: [], workloadAPI: { socket: 'unix:///unused' }, trustEnvoyPrincipal: trust },
      }).identity,
      bundles: new StaticBundleSource([]),
      clock: systemClock,
    });

  it('takes Envoy’s verified principal as the caller only when configured', () => {
    expect(step(true).identify(req)).toEqual({
      id: 'spiffe://example.org/ns/mesh/sa/envoy',
      trust_domain: 'example.org',
      path: '/ns/mesh/sa/envoy',
      svid_type: 'x509',
      expires_at: '',
    });
    expect(step(false).identify(req)).toBeNull();
  });
});
