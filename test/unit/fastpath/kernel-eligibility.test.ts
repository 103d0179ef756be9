import { describe, expect, it } from 'vitest';
import { kernelEligibility } from '../../../src/fastpath/kernel-eligibility';

const SRC = 'attributes.source.address.socketAddress.address';
const DST = 'attributes.destination.address.socketAddress.address';
const PORT = 'attributes.destination.address.socketAddress.portValue';
const withCache = (cache: unknown) => ({ metadata: { verdict: { cache } } });

describe('kernel eligibility from metadata.verdict.cache', () => {
  const cases = [
    { name: 'addresses and port', manifest: withCache({ key: [SRC, DST, PORT], ttlMs: 1000 }), want: { eligible: true } },
    {
      name: 'identity and destination',
      manifest: withCache({ key: ['spiffe.id', DST, PORT], ttlMs: 1000, denyTtlMs: 50 }),
      want: { eligible: true },
    },
    { name: 'source_principal', manifest: withCache({ key: ['source_principal'], ttlMs: 1000 }), want: { eligible: true } },
    {
      name: 'a path',
      manifest: withCache({ key: [SRC, 'attributes.request.http.path'], ttlMs: 1000 }),
      want: { eligible: false, why: 'NOT_L4' },
    },
    {
      name: 'a header',
      manifest: withCache({ key: ['attributes.request.http.headers.x-user'], ttlMs: 1000 }),
      want: { eligible: false, why: 'NOT_L4' },
    },
    {
      name: 'source port (not visible before connect)',
      manifest: withCache({ key: ['attributes.source.address.socketAddress.portValue'], ttlMs: 1 }),
      want: { eligible: false, why: 'NOT_L4' },
    },
    { name: 'no metadata', manifest: {}, want: { eligible: false, why: 'NO_DECLARATION' } },
    { name: 'no cache block', manifest: { metadata: { verdict: { name: 'x' } } }, want: { eligible: false, why: 'NO_DECLARATION' } },
    { name: 'empty key', manifest: withCache({ key: [], ttlMs: 1000 }), want: { eligible: false, why: 'INVALID_DECLARATION' } },
    { name: 'key not a list', manifest: withCache({ key: SRC, ttlMs: 1000 }), want: { eligible: false, why: 'INVALID_DECLARATION' } },
    { name: 'missing ttlMs', manifest: withCache({ key: [SRC] }), want: { eligible: false, why: 'INVALID_DECLARATION' } },
    {
      name: 'negative denyTtlMs',
      manifest: withCache({ key: [SRC], ttlMs: 1, denyTtlMs: -5 }),
      want: { eligible: false, why: 'INVALID_DECLARATION' },
    },
    { name: 'fractional ttlMs', manifest: withCache({ key: [SRC], ttlMs: 1.5 }), want: { eligible: false, why: 'INVALID_DECLARATION' } },
    {
      name: 'too many paths',
      manifest: withCache({ key: new Array(33).fill(SRC), ttlMs: 1 }),
      want: { eligible: false, why: 'INVALID_DECLARATION' },
    },
  ];
  it.each(cases)('$name', ({ manifest, want }) => expect(kernelEligibility(manifest)).toMatchObject(want));

  it('denyTtlMs defaults to ttlMs', () => {
    const r = kernelEligibility(withCache({ key: [SRC], ttlMs: 700 }));
    expect(r).toMatchObject({ eligible: true, declaration: { keyPaths: [SRC], ttlMs: 700, denyTtlMs: 700 } });
  });
});
