import { ExactNumber } from './exact-number';

/** Set on an input document that holds ExactNumbers; symbol keys are invisible to JSON and Object.keys. */
export const HAS_EXACT_NUMBERS: unique symbol = Symbol('verdict.hasExactNumbers');

/**
 * The input document as JSON text, which is how every engine receives it (opa-wasm parses numbers from
 * their text with arbitrary precision). An ExactNumber is written as its lexeme, so `1.0`, `-0` and
 * `12345678901234567890` reach the policy as the client wrote them. Documents without one take
 * JSON.stringify's native path. The input's depth is bounded when it is built (limits.maxInputDepth), so
 * the recursion here is bounded too.
 */
export function inputToJSON(input: object): string {
  if (!(HAS_EXACT_NUMBERS in input)) return JSON.stringify(input);
  return write(input) as string;
}

function write(v: unknown): string | undefined {
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'number':
      return Number.isFinite(v) ? String(v) : 'null';
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object': {
      if (v === null) return 'null';
      if (v instanceof ExactNumber) return v.lexeme;
      if (Array.isArray(v)) {
        let out = '[';
        for (let i = 0; i < v.length; i++) out += (i === 0 ? '' : ',') + (write(v[i]) ?? 'null');
        return `${out}]`;
      }
      let out = '{';
      let first = true;
      for (const key of Object.keys(v)) {
        const text = write((v as Record<string, unknown>)[key]);
        if (text === undefined) continue;
        out += `${first ? '' : ','}${JSON.stringify(key)}:${text}`;
        first = false;
      }
      return `${out}}`;
    }
    default:
      return undefined; // undefined / functions are skipped, as JSON.stringify skips them
  }
}
