import { describe, expect, it } from 'vitest';
import { readCacheDeclaration } from '../../../src/cache/cache-declaration';
import { encode, requestKey, requestKeyFields } from '../../../src/cache/cache-key';
import { expiryFor } from '../../../src/cache/cache-plan';
import { DecisionCache } from '../../../src/cache/decision-cache';
import type { Clock } from '../../../src/clock';
import type { VerdictError } from '../../../src/errors';
import { EMPTY_RESULT_FIELDS, type PolicyResult } from '../../../src/policy/policy-result';
import type { CheckRequest } from '../../../src/request/check-request';

/** The injected clock: time moves only when the test says so. */
function manualClock(startMs = 1_764_000_000_000): Clock & { advance(ms: number): void } {
  let now = startMs;
  return { nowMs: () => now, monotonicNs: () => BigInt(now) * 1_000_000n, advance: (ms) => void (now += ms) };
}

const ALLOW: PolicyResult = { allowed: true, ...EMPTY_RESULT_FIELDS };
const DENY: PolicyResult = { allowed: false, ...EMPTY_RESULT_FIELDS };
const DECL = readCacheDeclaration({
  metadata: { verdict: { cache: { key: ['spiffe.id', 'attributes.request.http.method'], ttlMs: 1000, denyTtlMs: 200 } } },
})!;

function cache(clock: Clock, maxEntries = 1000, maxBytes = 1 << 20): DecisionCache {
  return new DecisionCache({ maxEntries, maxBytes, clock });
}

describe('cache declaration', () => {
  const bad: [string, unknown][] = [
    ['key not an array', { key: 'spiffe.id', ttlMs: 1 }],
    ['empty key', { key: [], ttlMs: 1 }],
    ['bad path', { key: ['spiffe..id'], ttlMs: 1 }],
    ['prototype path', { key: ['__proto__.x'], ttlMs: 1 }],
    ['duplicate path', { key: ['a', 'a'], ttlMs: 1 }],
    ['ttl missing', { key: ['a'] }],
    ['ttl zero', { key: ['a'], ttlMs: 0 }],
    ['unknown field', { key: ['a'], ttlMs: 5, ttl: 5 }],
  ];
  for (const [name, cacheDecl] of bad) {
    it(`refuses ${name} with ERR_CACHE_DECLARATION`, () => {
      let code: string | undefined;
      try {
        readCacheDeclaration({ metadata: { verdict: { cache: cacheDecl } } });
      } catch (err) {
        code = (err as VerdictError).code;
      }
      expect(code).toBe('ERR_CACHE_DECLARATION');
    });
  }

  it('returns null for a bundle that declares nothing (not cached) and defaults denyTtlMs to ttlMs', () => {
    expect(readCacheDeclaration({ metadata: { verdict: { name: 'x' } } })).toBeNull();
    const d = readCacheDeclaration({ metadata: { verdict: { cache: { key: ['spiffe.id'], ttlMs: 50 } } } });
    expect(d).toMatchObject({ keyPaths: ['spiffe.id'], ttlMs: 50, denyTtlMs: 50 });
  });
});

describe('cache keys', () => {
  const req = (method: string, extra: Record<string, unknown> = {}): CheckRequest =>
    ({ attributes: { request: { http: { method, path: '/a', headers: { authorization: 'secret' } } }, ...extra } }) as CheckRequest;
  const spiffe = {
    id: 'spiffe://example.org/a',
    trust_domain: 'example.org',
    path: '/a',
    svid_type: 'x509' as const,
    expires_at: '2030-01-01T00:00:00Z',
  };

  it('differs when a declared field differs and not otherwise', () => {
    expect(requestKey('sha', DECL, req('GET'), spiffe)).toBe(requestKey('sha', DECL, req('GET', { source: { principal: 'x' } }), spiffe));
    expect(requestKey('sha', DECL, req('GET'), spiffe)).not.toBe(requestKey('sha', DECL, req('POST'), spiffe));
    expect(requestKey('sha', DECL, req('GET'), spiffe)).not.toBe(requestKey('sha', DECL, req('GET'), null));
    expect(requestKey('sha1', DECL, req('GET'), spiffe)).not.toBe(requestKey('sha2', DECL, req('GET'), spiffe));
  });

  it('encodes injectively (no two values alike)', () => {
    const values = ['a|b', 'a', 'b', '', 1, '1', true, 'true', null, undefined, [], {}, ['a'], { a: 1 }, { a: '1' }, [['a']]];
    const encoded = values.map(encode);
    expect(new Set(encoded).size).toBe(values.length);
    expect(encode({ b: 1, a: 2 })).toBe(encode({ a: 2, b: 1 }));
  });

  it('records only the key fields (no headers, so no secrets) for a cache hit', () => {
    expect(requestKeyFields(DECL, req('GET'), spiffe)).toEqual({
      spiffe: { id: spiffe.id },
      attributes: { request: { http: { method: 'GET' } } },
    });
  });
});

describe('DecisionCache', () => {
  it('hits until the TTL, then misses', async () => {
    const clock = manualClock();
    const c = cache(clock);
    await c.evaluate(
      'k',
      () => ALLOW,
      (r) => expiryFor(DECL, clock.nowMs(), null, r),
    );
    expect(c.get('k')).toBe(ALLOW);
    clock.advance(999);
    expect(c.get('k')).toBe(ALLOW);
    clock.advance(1);
    expect(c.get('k')).toBeUndefined();
    expect(c.stats()).toMatchObject({ hits: 2, misses: 1, evictions: 1, entries: 0 });
  });

  it('keeps a deny only for its own (shorter) TTL', async () => {
    const clock = manualClock();
    const c = cache(clock);
    await c.evaluate(
      'k',
      () => DENY,
      (r) => expiryFor(DECL, clock.nowMs(), null, r),
    );
    clock.advance(199);
    expect(c.get('k')).toBe(DENY);
    clock.advance(1);
    expect(c.get('k')).toBeUndefined();
  });

  it('never keeps an entry past the SVID it was made for', async () => {
    const clock = manualClock(Date.parse('2030-01-01T00:00:00Z') - 300);
    const c = cache(clock);
    const svid = { id: 'spiffe://e/a', trust_domain: 'e', path: '/a', svid_type: 'x509' as const, expires_at: '2030-01-01T00:00:00Z' };
    await c.evaluate(
      'k',
      () => ALLOW,
      (r) => expiryFor(DECL, clock.nowMs(), svid, r),
    );
    clock.advance(299);
    expect(c.get('k')).toBe(ALLOW);
    clock.advance(1);
    expect(c.get('k')).toBeUndefined();
    // An expiry that does not parse: not cached at all.
    expect(expiryFor(DECL, clock.nowMs(), { ...svid, expires_at: 'soon' }, ALLOW)).toBeNull();
  });

  it('drops everything on invalidate (bundle swap, trust-bundle change), including in-flight results', async () => {
    const clock = manualClock();
    const c = cache(clock);
    await c.evaluate(
      'a',
      () => ALLOW,
      () => clock.nowMs() + 1000,
    );
    let release!: (r: PolicyResult) => void;
    const inflight = c.evaluate(
      'b',
      () => new Promise<PolicyResult>((r) => (release = r)),
      () => clock.nowMs() + 1000,
    );
    c.invalidate();
    release(ALLOW);
    await inflight;
    expect(c.get('a')).toBeUndefined();
    expect(c.get('b')).toBeUndefined(); // began before the swap: not stored
  });

  it('evaluates once for 1,000 concurrent identical misses', async () => {
    const clock = manualClock();
    const c = cache(clock);
    let evaluations = 0;
    let release!: (r: PolicyResult) => void;
    const gate = new Promise<PolicyResult>((r) => (release = r));
    const calls = Array.from({ length: 1000 }, () =>
      c.evaluate(
        'same',
        () => {
          evaluations++;
          return gate;
        },
        () => clock.nowMs() + 1000,
      ),
    );
    release(ALLOW);
    const results = await Promise.all(calls);
    expect(evaluations).toBe(1);
    expect(results.filter((r) => r.outcome === 'miss')).toHaveLength(1);
    expect(results.filter((r) => r.outcome === 'coalesced')).toHaveLength(999);
    expect(results.every((r) => r.result === ALLOW)).toBe(true);
  });

  it('shares an evaluation error with every waiting caller and caches nothing', async () => {
    const clock = manualClock();
    const c = cache(clock);
    const boom = (): Promise<PolicyResult> => Promise.reject(new Error('engine trap'));
    const outcomes = await Promise.allSettled([1, 2, 3].map(() => c.evaluate('e', boom, () => clock.nowMs() + 1000)));
    expect(outcomes.every((o) => o.status === 'rejected')).toBe(true);
    expect(c.get('e')).toBeUndefined();
  });

  it('is bounded by entries and by bytes, counting evictions', async () => {
    const clock = manualClock();
    const byEntries = cache(clock, 10);
    for (let i = 0; i < 25; i++)
      await byEntries.evaluate(
        `k${i}`,
        () => ALLOW,
        () => clock.nowMs() + 1000,
      );
    expect(byEntries.stats()).toMatchObject({ entries: 10, evictions: 15 });
    // The entry bound evicts the least recently used entry: k15 was read last, so k16 goes when k25 comes.
    expect(byEntries.get('k15')).toBe(ALLOW);
    await byEntries.evaluate(
      'k25',
      () => ALLOW,
      () => clock.nowMs() + 1000,
    );
    expect(byEntries.get('k15')).toBe(ALLOW);
    expect(byEntries.get('k16')).toBeUndefined();
    expect(byEntries.stats()).toMatchObject({ entries: 10, evictions: 16 });
    const byBytes = cache(clock, 1_000_000, 64 * 1024);
    for (let i = 0; i < 2000; i++)
      await byBytes.evaluate(
        `key-${i}-${'x'.repeat(100)}`,
        () => ALLOW,
        () => clock.nowMs() + 1000,
      );
    expect(byBytes.stats().bytes).toBeLessThanOrEqual(64 * 1024);
    expect(byBytes.stats().evictions).toBeGreaterThan(0);
  });

  it('allocates nothing up front for its entry bound (memory grows with the entries held)', () => {
    // Ten million is the schema's largest cache.maxEntries: index arrays sized for it up front would be ~360 MB.
    const before = process.memoryUsage();
    const c = cache(manualClock(), 10_000_000, 64 << 20);
    const after = process.memoryUsage();
    const grown = after.heapUsed - before.heapUsed + (after.arrayBuffers - before.arrayBuffers);
    expect(c.stats().entries).toBe(0);
    expect(grown).toBeLessThan(4 << 20);
  });
});
