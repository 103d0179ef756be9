import { VerdictError } from '../../src/errors';

/** What a call threw: its VerdictError code, or a string that no expected code can equal. */
function describeThrown(err: unknown): string {
  return err instanceof VerdictError ? err.code : `not a VerdictError: ${String(err)}`;
}

/** The error code `fn` throws, for table tests that assert the code, not just "throws". */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return describeThrown(err);
  }
  return 'no error';
}

/** The same for an async call or a promise. */
export async function codeOfAsync(work: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof work === 'function' ? work() : work);
  } catch (err) {
    return describeThrown(err);
  }
  return 'no error';
}

/** The VerdictError `fn` throws, for tests that compare its code and message; anything else fails the test. */
export function verdictErrorOf(fn: () => unknown): VerdictError {
  try {
    fn();
  } catch (err) {
    if (err instanceof VerdictError) return err;
    throw err;
  }
  throw new Error('expected a VerdictError');
}
