import { setFlagsFromString } from 'node:v8';
import type { Config } from '../config/schema';

/**
 * Sets V8's old-generation growth factor for this process from `server.heapGrowingPercent`
 * (docs/memory.md). By default V8 lets the old generation grow to up to 4× what the last full GC kept
 * before it collects again; under load most of that is garbage promoted from the young generation, and
 * the native memory it holds (HTTP/2 stream objects, buffers) waits with it. A fixed 1.5× keeps RSS close
 * to the live heap. `--heap-growing-percent` is read at every GC, so setting it here, before the first
 * request, takes effect (Node refuses it in NODE_OPTIONS). A flag on the command line wins.
 */
export function applyHeapGrowing(config: Config, execArgv: readonly string[] = process.execArgv): void {
  const percent = config.server.heapGrowingPercent;
  if (percent === 0 || execArgv.some((a) => /^--heap[-_]growing[-_]percent\b/.test(a))) return;
  setFlagsFromString(`--heap-growing-percent=${percent}`);
}
