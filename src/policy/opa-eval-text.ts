import type { LoadedPolicy } from '@open-policy-agent/opa-wasm';
import { VerdictError } from '../errors';

const WASM_PAGE_BYTES = 64 * 1024;

interface OPAExports {
  opa_eval(reserved: number, entrypoint: number, data: number, input: number, inputLen: number, heapPtr: number, format: number): number;
}

/**
 * One evaluation through the OPA wasm ABI 1.2 `opa_eval` export (OPA docs, "WebAssembly" › "Evaluation"):
 * the input's JSON text is written once, straight into linear memory at the heap pointer left after the
 * data; opa_eval parses it, evaluates the entrypoint and returns the address of the result set as
 * NUL-terminated JSON, returned here as text (the engine maps each distinct answer once). This is what
 * opa-wasm's own evaluate() does for an ArrayBuffer input, without its TextEncoder copy, its TextDecoder per
 * call and its JavaScript loop looking for the NUL. A policy built for an older ABI goes through opa-wasm.
 */
export function evaluateText(policy: LoadedPolicy, entrypoint: number, text: string): string {
  if ((policy.minorVersion as number) < 2) return JSON.stringify(policy.evaluate(new TextEncoder().encode(text).buffer, entrypoint));
  const mem = policy.mem;
  const addr = policy.dataHeapPtr as number;
  let view = viewOf(mem);
  let len: number;
  // UTF-8 takes at most 3 bytes per UTF-16 unit: when that fits, one write tells the length.
  if (addr + text.length * 3 <= view.length) len = view.write(text, addr, 'utf8');
  else {
    len = Buffer.byteLength(text, 'utf8');
    const short = addr + len - view.length;
    // Past the memory's maximum, grow() throws a RangeError and leaves the memory as it was: the request's
    // input cannot be handed over (request class), nothing ran, the instance is intact.
    if (short > 0) {
      try {
        mem.grow(Math.ceil(short / WASM_PAGE_BYTES));
      } catch {
        throw new VerdictError('ERR_POLICY_INPUT', `input of ${len} bytes does not fit the policy's memory maximum`);
      }
    }
    view = viewOf(mem);
    view.write(text, addr, len, 'utf8');
  }
  const exports = (policy.wasmInstance as WebAssembly.Instance).exports as unknown as OPAExports;
  const at = exports.opa_eval(0, entrypoint, policy.dataAddr, addr, len, addr + len, 0);
  // Evaluation may have grown the memory: view it afresh.
  const out = viewOf(mem);
  const end = out.indexOf(0, at);
  if (end < 0) throw new Error('opa_eval result is not NUL-terminated');
  return out.toString('utf8', at, end);
}

// A Buffer over the memory's current ArrayBuffer (a grow replaces it, so the old view goes with the old buffer).
const views = new WeakMap<ArrayBuffer, Buffer>();

function viewOf(mem: WebAssembly.Memory): Buffer {
  const ab = mem.buffer;
  let view = views.get(ab);
  if (view === undefined) {
    view = Buffer.from(ab);
    views.set(ab, view);
  }
  return view;
}
