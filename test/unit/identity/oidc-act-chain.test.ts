import { describe, expect, it } from 'vitest';
import { flattenActChain } from '../../../src/identity/oidc-act-chain';
import { codeOf } from '../../helpers/error-code';

describe('flattenActChain (RFC 8693 §4.1)', () => {
  it.each([
    { name: 'no act', act: undefined, want: [] },
    { name: 'one actor, other claims kept', act: { sub: 'a', iss: 'https://i' }, want: [{ sub: 'a', iss: 'https://i' }] },
    {
      name: 'three deep, outermost first',
      act: { sub: 'a', act: { sub: 'b', act: { sub: 'c' } } },
      want: [{ sub: 'a' }, { sub: 'b' }, { sub: 'c' }],
    },
  ])('$name', ({ act, want }) => {
    expect(flattenActChain(act, 3)).toEqual(want);
  });

  it.each([
    {
      name: 'deeper than the bound',
      act: { sub: 'a', act: { sub: 'b', act: { sub: 'c', act: { sub: 'd' } } } },
      code: 'ERR_TOKEN_ACT_DEPTH',
    },
    { name: 'a generated 10,000-deep chain', act: deepChain(10_000), code: 'ERR_TOKEN_ACT_DEPTH' },
    { name: 'act is an array', act: [{ sub: 'a' }], code: 'ERR_TOKEN_CLAIMS' },
    { name: 'actor without sub', act: { iss: 'x' }, code: 'ERR_TOKEN_CLAIMS' },
    { name: 'nested act is a string', act: { sub: 'a', act: 'b' }, code: 'ERR_TOKEN_CLAIMS' },
  ])('refuses $name with $code', ({ act, code }) => {
    expect(codeOf(() => flattenActChain(act, 3))).toBe(code);
  });
});

function deepChain(n: number): unknown {
  let node: Record<string, unknown> = { sub: 'leaf' };
  for (let i = 0; i < n; i++) node = { sub: `a${i}`, act: node };
  return node;
}
