import { describe, expect, it } from 'vitest';
import type { CheckRequest } from '../../../src/request/check-request';
import { TenantSelectorIndex } from '../../../src/tenancy/tenant-selector';

// The authority selector is case-insensitive as a host is (RFC 3986 §3.2.2: ASCII letters only) and as
// Envoy matches virtual-host domains. Characters outside ASCII whose Unicode lowercase is an ASCII letter
// must not turn one host into another tenant's.
const request = (host: string): CheckRequest => ({ attributes: { request: { http: { host } } } });
const index = new TenantSelectorIndex({ from: 'authority' }, [
  { match: ['key.example'], tenant: 'key' },
  { match: ['site.example'], tenant: 'site' },
]);

describe('TenantSelectorIndex authority: ASCII case folding only', () => {
  it.each([
    { name: 'KEY.Example:8443 (ASCII case and port)', host: 'KEY.Example:8443', want: 'key' },
    { name: 'the Kelvin sign \\u212A for K', host: '\u212Aey.example', want: undefined },
    { name: 'the Kelvin sign with a port', host: '\u212AEY.EXAMPLE:443', want: undefined },
    { name: 'dotted capital I \\u0130 for I', host: 's\u0130te.example', want: undefined },
  ])('$name names tenant $want', ({ host, want }) => {
    expect(index.find(request(host), null)).toBe(want);
  });
});
