/**
 * A JSON number kept as written. opa-envoy-plugin hands Rego `json.Number`s (OPA keeps their text), so
 * `12345678901234567890`, `1.0` and `-0` reach a policy exactly; a JavaScript double would not. opa-wasm
 * parses number text itself (as arbitrary precision), so verdict keeps the lexeme and writes it back
 * verbatim when it serializes the input (input-json.ts). Only numbers whose text a double would change
 * become an ExactNumber; every other number stays a plain `number`.
 */
export class ExactNumber {
  constructor(
    /** The number's JSON text, already validated against the RFC 8259 §6 grammar. */
    readonly lexeme: string,
  ) {}

  /** For JSON.stringify outside the input path (decision logs): the nearest double, or the text if none. */
  toJSON(): number | string {
    const n = Number(this.lexeme);
    return Number.isFinite(n) ? n : this.lexeme;
  }

  toString(): string {
    return this.lexeme;
  }
}

/** A JSON number from its validated text: a plain number when the double prints back identically. */
export function numberFromLexeme(lexeme: string): number | ExactNumber {
  const n = Number(lexeme);
  return String(n) === lexeme ? n : new ExactNumber(lexeme);
}
