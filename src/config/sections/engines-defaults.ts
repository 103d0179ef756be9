/**
 * The `engines` section's defaults, in a module of their own without zod: the engines read them at serve
 * time, when zod is not loaded (the config is validated off the serving heap, docs/memory.md). The
 * schema's `.default()`s are these values, so they are written once.
 */
export const DEFAULT_ENGINES_CONFIG = Object.freeze({
  cedar: Object.freeze({ reasonsHeader: '', maxEntitiesPerRequest: 64 }),
  wasm: Object.freeze({ timeoutMs: 50, maxMemoryPages: 256, maxInputBytes: 2 * 1024 * 1024, maxOutputBytes: 64 * 1024 }),
});
