import { VerdictError } from '../errors';

/** One party of a delegation chain: the claims of one `act` object, without its nested `act`. */
export type Actor = Record<string, unknown> & { sub: string };

/**
 * RFC 8693 §4.1: `act` names the current actor; a nested `act` inside it names the actor before, and so on.
 * Flattened outermost (current) first. Each must be an object with a string `sub`; a chain deeper than
 * `maxDepth` is refused (bounded work for a value that crossed a trust boundary).
 */
export function flattenActChain(act: unknown, maxDepth: number): Actor[] {
  const chain: Actor[] = [];
  let node = act;
  while (node !== undefined) {
    if (chain.length >= maxDepth) throw new VerdictError('ERR_TOKEN_ACT_DEPTH', `act chain is deeper than ${maxDepth}`);
    if (typeof node !== 'object' || node === null || Array.isArray(node))
      throw new VerdictError('ERR_TOKEN_CLAIMS', 'act is not a JSON object');
    const { act: inner, ...claims } = node as Record<string, unknown>;
    if (typeof claims.sub !== 'string') throw new VerdictError('ERR_TOKEN_CLAIMS', 'act has no string sub');
    chain.push(claims as Actor);
    node = inner;
  }
  return chain;
}
