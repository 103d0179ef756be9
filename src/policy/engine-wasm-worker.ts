/**
 * The worker that runs a custom engine module, as source text (run with `new Worker(src, { eval: true })`
 * so it works the same from src/ under vitest and from dist/). It talks to the host through shared memory
 * only: the host writes the input and flips CTRL[STATE] to REQUEST; the worker answers and flips it to
 * RESPONSE. The host can terminate the worker at any moment (a module that never returns).
 *
 * CTRL (Int32Array over a SharedArrayBuffer): [STATE, INPUT_LEN, OUTPUT_LEN, STATUS]
 * DATA: input bytes at [0, maxInputBytes), output bytes at [maxInputBytes, maxInputBytes + maxOutputBytes).
 */
export const CTRL = Object.freeze({ STATE: 0, INPUT_LEN: 1, OUTPUT_LEN: 2, STATUS: 3, SLOTS: 4 });
export const STATE = Object.freeze({ IDLE: 0, REQUEST: 1, RESPONSE: 2 });
/** STATUS values: OK carries the decision JSON; the others carry a message. */
export const STATUS = Object.freeze({ OK: 0, TRAP: 1, BAD_POINTER: 2, OUTPUT_TOO_LARGE: 3 });

export const WASM_WORKER_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const { module, ctrlBuffer, dataBuffer, maxInputBytes, maxOutputBytes } = workerData;
const CTRL = ${JSON.stringify(CTRL)};
const STATE = ${JSON.stringify(STATE)};
const STATUS = ${JSON.stringify(STATUS)};
const ctrl = new Int32Array(ctrlBuffer);
const input = new Uint8Array(dataBuffer, 0, maxInputBytes);
const output = new Uint8Array(dataBuffer, maxInputBytes, maxOutputBytes);
const encoder = new TextEncoder();
let exports = null;

function instantiate() {
  exports = new WebAssembly.Instance(module, {}).exports;
}

function reply(status, bytes) {
  const n = Math.min(bytes.length, maxOutputBytes);
  output.set(bytes.subarray(0, n));
  ctrl[CTRL.OUTPUT_LEN] = n;
  ctrl[CTRL.STATUS] = status;
}

function fail(status, message) {
  reply(status, encoder.encode(message));
}

function run(len) {
  const ptr = exports.alloc(len) >>> 0;
  let mem = new Uint8Array(exports.memory.buffer);
  if (ptr + len > mem.length) return fail(STATUS.BAD_POINTER, 'alloc returned ' + ptr + ', outside memory for ' + len + ' bytes');
  mem.set(input.subarray(0, len), ptr);
  const packed = BigInt.asUintN(64, BigInt(exports.evaluate(ptr, len)));
  const outPtr = Number(packed >> 32n);
  const outLen = Number(packed & 0xffffffffn);
  mem = new Uint8Array(exports.memory.buffer);
  if (outPtr + outLen > mem.length) return fail(STATUS.BAD_POINTER, 'evaluate returned ' + outPtr + '+' + outLen + ', outside memory');
  if (outLen > maxOutputBytes) return fail(STATUS.OUTPUT_TOO_LARGE, 'decision of ' + outLen + ' bytes exceeds ' + maxOutputBytes);
  reply(STATUS.OK, mem.subarray(outPtr, outPtr + outLen));
}

instantiate();
parentPort.postMessage('ready');
for (;;) {
  Atomics.wait(ctrl, CTRL.STATE, STATE.IDLE);
  if (Atomics.load(ctrl, CTRL.STATE) !== STATE.REQUEST) continue;
  try {
    run(ctrl[CTRL.INPUT_LEN]);
  } catch (err) {
    // A trap may leave the instance half-updated: start the next call from a fresh one.
    fail(STATUS.TRAP, String(err && err.message ? err.message : err));
    try { instantiate(); } catch (e) { /* the next call reports it */ }
  }
  Atomics.store(ctrl, CTRL.STATE, STATE.RESPONSE);
  Atomics.notify(ctrl, CTRL.STATE);
}
`;
