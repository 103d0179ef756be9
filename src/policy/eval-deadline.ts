import { nativeAddonPath, requireNativeFunction } from '../native-module';

/**
 * native/eval-deadline.cc: `run(ms, fn, ...args)` calls fn(...args) and, if it still runs `ms` ms later,
 * stops it (every JavaScript and WebAssembly frame it entered is unwound) and throws an Error whose code is
 * `EDEADLINE`. fn's own exceptions pass through as they are.
 */
export interface EvalDeadlineAddon {
  run<A extends unknown[], R>(ms: number, fn: (...args: A) => R, ...args: A): R;
}

/** A synchronous evaluation's bound: the budget and the addon that enforces it while the evaluation runs. */
export interface EvalDeadline {
  ms: number;
  run: EvalDeadlineAddon['run'];
}

export function evalDeadlineAddonPath(): string {
  return nativeAddonPath('eval_deadline.node');
}

/** The addon, or why it is not there (not built, fails to load). */
export function loadEvalDeadline(path = evalDeadlineAddonPath()): { addon: EvalDeadlineAddon } | { reason: string } {
  return requireNativeFunction<EvalDeadlineAddon>(path, 'run');
}

/** Whether an error is the addon's stop at the deadline (and not one the evaluation threw itself). */
export function stoppedAtDeadline(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'EDEADLINE';
}
