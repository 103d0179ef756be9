/** One input path a policy reads, as segments ([] = the whole input), and where it is read. */
export interface InputRead {
  readonly segments: readonly string[];
  readonly file: string;
  /** Rule (Rego) or policy id (Cedar) that reads it. */
  readonly where: string;
}

/** Something a policy does that no cache key can cover (a clock read, a network call). */
export interface NondeterministicCall {
  readonly name: string;
  readonly file: string;
  readonly where: string;
}

export interface PolicyReads {
  inputs: InputRead[];
  nondeterministic: NondeterministicCall[];
}
