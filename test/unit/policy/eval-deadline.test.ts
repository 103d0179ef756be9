import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { evalDeadlineAddonPath, loadEvalDeadline, type EvalDeadlineAddon } from '../../../src/policy/eval-deadline';

// native/eval-deadline.cc, loaded as the server loads it. It is built by `npm run build:native` (setup and CI
// build it, and build.sh fails under CI=true when it cannot): a missing addon fails here with the reason.

function addon(): EvalDeadlineAddon {
  const loaded = loadEvalDeadline();
  if ('reason' in loaded) throw new Error(loaded.reason);
  return loaded.addon;
}

/** (module (func (export "spin") (loop (br 0)))): a WebAssembly function that never returns. */
function spinningWasm(): () => void {
  const bytes = Buffer.from(
    [
      '0061736d01000000', // magic, version
      '010401600000', // type section: () -> ()
      '03020100', // function section: one function of type 0
      '070801047370696e0000', // export "spin" = function 0
      '0a0901070003400c000b0b', // code: no locals; loop; br 0; end; end
    ].join(''),
    'hex',
  );
  return new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports.spin as () => void;
}

function codeOfRun(fn: () => unknown): string {
  try {
    fn();
    return 'returned';
  } catch (err) {
    return String((err as { code?: unknown }).code);
  }
}

function busyFor(ms: number): void {
  const end = process.hrtime.bigint() + BigInt(ms * 1e6);
  while (process.hrtime.bigint() < end);
}

describe('eval-deadline addon: run(ms, fn, ...args)', () => {
  it('passes the arguments and returns what fn returns', () => {
    expect(addon().run(100, (a: number, b: string, c: { n: number }) => `${a}${b}${c.n}`, 1, 'x', { n: 2 })).toBe('1x2');
  });

  it('stops a WebAssembly loop that never returns with EDEADLINE, no earlier than its deadline', () => {
    const spin = spinningWasm();
    const started = process.hrtime.bigint();
    expect(codeOfRun(() => addon().run(50, spin))).toBe('EDEADLINE');
    expect(Number(process.hrtime.bigint() - started) / 1e6).toBeGreaterThanOrEqual(50);
  });

  it('stops a JavaScript loop that never returns, and the thread carries on: a second stop, microtasks and timers run', async () => {
    expect(
      codeOfRun(() =>
        addon().run(30, () => {
          for (;;);
        }),
      ),
    ).toBe('EDEADLINE');
    expect(codeOfRun(() => addon().run(30, spinningWasm()))).toBe('EDEADLINE');
    await expect(Promise.resolve(7).then((v) => v + 1)).resolves.toBe(8);
    await new Promise((resolve) => setTimeout(resolve, 1));
    expect(addon().run(30, () => 'after')).toBe('after');
  });

  it("passes fn's own exception through unchanged", () => {
    const own = new TypeError('its own');
    let thrown: unknown;
    try {
      addon().run(100, () => {
        throw own;
      });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBe(own);
  });

  it('holds each call to its own deadline: 120 calls of 1 ms each under a 40 ms deadline are never stopped', () => {
    // Their sum is three times the deadline: a watchdog that timed the armed state rather than the call would fire.
    for (let i = 0; i < 120; i++) expect(addon().run(40, () => (busyFor(1), i))).toBe(i);
  });

  it('refuses run() inside run() with ENESTED (one deadline at a time), leaving the outer call running to its end', () => {
    const inner = addon().run(100, () => codeOfRun(() => addon().run(100, () => 1)));
    expect(inner).toBe('ENESTED');
  });

  it.each([
    ['no function', [100, 1]],
    ['a zero deadline', [0, () => 1]],
    ['a NaN deadline', [Number.NaN, () => 1]],
    ['a deadline over an hour', [3_600_001, () => 1]],
  ])('refuses %s with EARG', (_, args) => {
    expect(codeOfRun(() => (addon().run as (...a: unknown[]) => unknown)(...args))).toBe('EARG');
  });

  it('does not cancel a termination it did not ask for: worker.terminate() still ends a worker spinning inside run()', async () => {
    // The addon is per isolate: the worker loads its own copy and watchdog (a 60 s deadline it never reaches).
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const dl = require(workerData);
       parentPort.postMessage('spinning');
       try { dl.run(60000, () => { for (;;); }); parentPort.postMessage('returned'); }
       catch (err) { parentPort.postMessage(String(err.code)); }`,
      { eval: true, workerData: evalDeadlineAddonPath() },
    );
    const messages: unknown[] = [];
    worker.on('message', (m) => messages.push(m));
    await once(worker, 'message');
    const exited = once(worker, 'exit');
    await worker.terminate();
    expect((await exited)[0]).toBe(1);
    expect(messages).toEqual(['spinning']);
  });
});
