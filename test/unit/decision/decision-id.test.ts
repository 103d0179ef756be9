import { describe, expect, it } from 'vitest';
import { newDecisionId } from '../../../src/decision/decision-id';

// RFC 9562 §5.4: 8-4-4-4-12 lower-case hex, version nibble 4, variant bits 10 (8, 9, a or b).
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('newDecisionId', () => {
  it('gives version 4 UUIDs in randomUUID form, distinct across several refills of its random pool', () => {
    const ids = Array.from({ length: 1000 }, () => newDecisionId());
    for (const id of ids) expect(id).toMatch(UUID_V4);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('uses every hex digit in the random positions (the bytes are not fixed or truncated)', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) for (const c of newDecisionId().replace(/-/g, '').slice(16)) seen.add(c);
    expect([...seen].sort().join('')).toBe('0123456789abcdef');
  });
});
