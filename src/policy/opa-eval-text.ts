import type { LoadedPolicy } from '@open-policy-agent/opa-wasm';

const WASM_PAGE_BYTES = 64 * 1024;

interface OPAExports {
  opa_eval(reserved: number, entrypoint: number, data: number, input: number, inputLen: number, heapPtr: number, format: number): number;
}

/**
 * One evaluation through the OPA wasm ABI 1.2 `opa_eval` export (OPA docs, "WebAssembly" › "Evaluation"):
 * the input's JSON text is written once, straight into linear memory at the heap pointer left after the
 * data; opa_eval parses it, evaluates the entrypoint and returns the address of the result set as
 * NUL-terminated JSON. This is what opa-wasm's own evaluate() does for an ArrayBuffer input, without its
 * TextEncoder copy, its TextDecoder per call and its JavaScript loop looking for the NUL. A policy built for
 * an older ABI goes through opa-wasm.
 */
export function evaluateText(policy: LoadedPolicy, entrypoint: number, text: string): unknown {
  if ((policy.minorVersion as number) < 2) return policy.evaluate(new TextEncoder().encode(text).buffer, entrypoint);
  const mem = policy.mem;
  const addr = policy.dataHeapPtr as number;
  const len = Buffer.byteLength(text, 'utf8');
  const short = addr + len - mem.buffer.byteLength;
  // Past the memory's maximum, grow() throws a RangeError: the engine treats it as a trap.
  if (short > 0) mem.grow(Math.ceil(short / WASM_PAGE_BYTES));
  Buffer.from(mem.buffer).write(text, addr, len, 'utf8');
  const exports = (policy.wasmInstance as WebAssembly.Instance).exports as unknown as OPAExports;
  const at = exports.opa_eval(0, entrypoint, policy.dataAddr, addr, len, addr + len, 0);
  // Evaluation may have grown the memory: view it afresh.
  const out = Buffer.from(mem.buffer);
  const end = out.indexOf(0, at);
  if (end < 0) throw new Error('opa_eval result is not NUL-terminated');
  return JSON.parse(out.toString('utf8', at, end));
}
