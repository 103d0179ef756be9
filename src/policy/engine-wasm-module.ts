import { VerdictError } from '../errors';

/** The exports a custom engine module must have (docs/engines.md, "Custom WASM engines"). */
export const REQUIRED_EXPORTS = Object.freeze({ memory: 'memory', alloc: 'function', evaluate: 'function' } as const);

export interface WasmModuleInfo {
  module: WebAssembly.Module;
  /** The memory's declared maximum, in 64 KiB pages. */
  maxMemoryPages: number;
}

/**
 * Compiles a custom engine and checks it before it may run: no imports at all (no WASI, no host
 * functions), the ABI's exports, and exactly one memory whose declared maximum is within the bound, so
 * the engine itself enforces the memory limit (memory.grow fails past it).
 */
export async function inspectWasmModule(bytes: Uint8Array, maxMemoryPages: number): Promise<WasmModuleInfo> {
  let module: WebAssembly.Module;
  try {
    module = await WebAssembly.compile(bytes);
  } catch (err) {
    throw new VerdictError('ERR_BUNDLE_ENGINE', `custom engine does not compile: ${(err as Error).message}`);
  }
  const imports = WebAssembly.Module.imports(module);
  if (imports.length > 0) {
    const names = imports.map((i) => `${i.module}.${i.name} (${i.kind})`).join(', ');
    throw new VerdictError('ERR_ENGINE_IMPORTS', `custom engine imports ${names}; verdict gives a custom engine no imports at all`);
  }
  const exported = new Map(WebAssembly.Module.exports(module).map((e) => [e.name, e.kind]));
  for (const [name, kind] of Object.entries(REQUIRED_EXPORTS)) {
    if (exported.get(name) !== kind) throw new VerdictError('ERR_BUNDLE_ENGINE', `custom engine must export ${kind} "${name}"`);
  }
  const declared = memoryMaximumPages(bytes);
  if (declared === null) {
    throw new VerdictError('ERR_BUNDLE_ENGINE', `custom engine memory declares no maximum (build it with one ≤ ${maxMemoryPages} pages)`);
  }
  if (declared > maxMemoryPages) {
    throw new VerdictError('ERR_BUNDLE_ENGINE', `custom engine memory maximum is ${declared} pages (limit ${maxMemoryPages})`);
  }
  return { module, maxMemoryPages: declared };
}

/**
 * The maximum of the module's one memory, read from the binary's memory section (id 5; WebAssembly core
 * spec §5.5.8, limits §5.3.7). null when the memory has no maximum. The module already compiled, so the
 * encoding is known to be well formed.
 */
export function memoryMaximumPages(bytes: Uint8Array): number | null {
  let pos = 8; // magic + version
  const leb = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = bytes[pos++] as number;
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
    }
  };
  while (pos < bytes.length) {
    const id = bytes[pos++] as number;
    const size = leb();
    if (id !== 5) {
      pos += size;
      continue;
    }
    const count = leb();
    if (count !== 1) throw new VerdictError('ERR_BUNDLE_ENGINE', `custom engine must define exactly one memory (has ${count})`);
    const flags = leb();
    leb(); // minimum
    return (flags & 1) === 1 ? leb() : null;
  }
  throw new VerdictError('ERR_BUNDLE_ENGINE', 'custom engine defines no memory');
}
