import { VerdictError } from '../errors';
import type { InputDocument } from '../request/input-document';
import { inputToJSON } from '../request/input-json';

/**
 * The input document as JSON (exact numbers keep their text: request/input-json.ts), inside the engine's guard: an input the serializer cannot take (nested
 * deeper than V8's stack allows, or past the string limit) is a coded refusal of *this request*
 * (ERR_POLICY_INPUT, request class), never an ERR_INTERNAL escaping the engine. The request side bounds
 * depth well below this; this is the engine's own floor, whatever builds the input.
 */
export function serializeInput(input: InputDocument): string {
  try {
    return inputToJSON(input);
  } catch (err) {
    throw new VerdictError('ERR_POLICY_INPUT', `input document cannot be serialised for the engine: ${(err as Error).message}`);
  }
}

/**
 * Runs an engine step that walks the input (Cedar's request mapping, a wasm call): a RangeError there is
 * the input's depth, refused as ERR_POLICY_INPUT; other non-coded throws are evaluation failures.
 */
export function guardEngineStep<T>(engine: string, step: () => T): T {
  try {
    return step();
  } catch (err) {
    if (err instanceof VerdictError) throw err;
    if (err instanceof RangeError) throw new VerdictError('ERR_POLICY_INPUT', `${engine}: input too deep or too large (${err.message})`);
    throw new VerdictError('ERR_POLICY_EVAL', `${engine}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
