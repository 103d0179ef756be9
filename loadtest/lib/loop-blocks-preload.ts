import { openSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { isMainThread } from 'node:worker_threads';

/**
 * Preloaded into a server under test (`node --require dist/loadtest/lib/loop-blocks-preload.js`) to say what
 * each event-loop block of its main thread was made of. A 1 ms timer notes every gap over
 * LOOP_BLOCKS_MIN_MS and splits it with the thread's scheduler counters (/proc/thread-self/schedstat: time
 * on a CPU, time runnable but waiting for one): on-CPU is work the event loop did (JS, GC, a synchronous
 * call), waiting is the machine's other threads holding both cores, and the rest is time the thread slept
 * off its timer (a lock held by another thread, a page fault). Main-thread GC pauses over 1 ms are noted
 * with them. Written as JSON to LOOP_BLOCKS_DIR/<pid>.json when the process exits. Epoch milliseconds throughout, so
 * the bench can place blocks in its own windows.
 */
export interface LoopBlock {
  atMs: number;
  gapMs: number;
  cpuMs: number;
  waitMs: number;
}

export interface GcPause {
  atMs: number;
  ms: number;
  /** perf_hooks gc kind: 1 scavenge, 2 minor mark-sweep, 4 mark-sweep-compact, 8 incremental marking, 16 weak callbacks. */
  kind: number;
}

const dir = process.env.LOOP_BLOCKS_DIR;
if (isMainThread && dir !== undefined) {
  const minMs = Number(process.env.LOOP_BLOCKS_MIN_MS ?? 4);
  const blocks: LoopBlock[] = [];
  const gcs: GcPause[] = [];
  const epoch = (t: number): number => Math.round(performance.timeOrigin + t);
  // Read into one buffer and parsed in place: the sampler makes no garbage of its own (its allocations would
  // grow the heap it observes and bring on the very collections it reports).
  const fd = openSync('/proc/thread-self/schedstat', 'r');
  const buf = Buffer.alloc(128);
  const counters: [number, number] = [0, 0];
  const sched = (): [number, number] => {
    const n = readSync(fd, buf, 0, buf.length, 0);
    let field = 0;
    let value = 0;
    for (let i = 0; i < n && field < 2; i++) {
      const c = buf[i] as number;
      if (c >= 48 && c <= 57) value = value * 10 + (c - 48);
      else {
        counters[field++] = value;
        value = 0;
      }
    }
    return counters;
  };
  let last = performance.now();
  let [run0, wait0] = sched();
  setInterval(() => {
    const now = performance.now();
    const [run, wait] = sched();
    const gapMs = now - last - 1;
    if (gapMs > minMs) {
      blocks.push({ atMs: epoch(last), gapMs: round(gapMs), cpuMs: round((run - run0) / 1e6), waitMs: round((wait - wait0) / 1e6) });
    }
    last = now;
    run0 = run;
    wait0 = wait;
  }, 1).unref();
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0;
      if (e.duration > 1) gcs.push({ atMs: epoch(e.startTime), ms: round(e.duration), kind });
    }
  }).observe({ entryTypes: ['gc'] });
  process.on('exit', () => writeFileSync(join(dir, `${process.pid}.json`), JSON.stringify({ blocks, gcs })));
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
