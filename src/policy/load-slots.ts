import { availableParallelism } from 'node:os';

/**
 * How many first bundle loads of loaders that start together (the tenants) run at once. Each load is a
 * bundle worker and an engine load worker, threads with their own heaps (~6 MiB of RSS each at least, up to
 * their resource limits and the module's memory): 300 tenants starting together ran 300 bundle workers at
 * once (1.85 GiB peak RSS here, 357 MiB once loaded; 265 MiB peak with this bound, and sooner). The work is
 * CPU-bound, so more than the cores buys no speed; a few more than two keep one slow load (a source that
 * drips, a check near its deadline) from holding up every other one.
 */
export const MAX_CONCURRENT_LOADS = Math.max(4, availableParallelism());

/** A counting semaphore: at most `size` holders at once, the others wait in order. */
export class LoadSlots {
  private free: number;
  private readonly waiting: (() => void)[] = [];

  constructor(size: number = MAX_CONCURRENT_LOADS) {
    this.free = size;
  }

  /** Resolves once a slot is held, with its release function (idempotent). */
  acquire(): Promise<() => void> {
    if (this.free > 0) {
      this.free--;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve) => this.waiting.push(() => resolve(this.releaser())));
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    };
  }
}
