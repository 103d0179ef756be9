import { z } from 'zod';

/** Decision cache (owned by src/cache/). A bundle is cached only when its manifest declares a key. */
export const cacheSchema = z
  .strictObject({
    /** Cache decisions of bundles that declare metadata.verdict.cache. */
    enabled: z.boolean().default(true),
    /** Bound on entries. */
    maxEntries: z.number().int().min(1).max(10_000_000).default(100_000),
    /** Bound on the estimated bytes of keys and results. */
    maxBytes: z
      .number()
      .int()
      .min(64 * 1024)
      .max(8 * 1024 * 1024 * 1024)
      .default(64 * 1024 * 1024),
    /** A request whose key would be longer than this is not cached (counted as bypass). */
    maxKeyBytes: z
      .number()
      .int()
      .min(128)
      .max(1024 * 1024)
      .default(4096),
    /**
     * On bundle load, check that the declared key covers every input path the policy reads: warn (the
     * verdict_cache_lint_findings metric and a log line), enforce (a bundle is cached only once the check
     * passed; OPA wasm bundles carry no Rego source, so they are then not cached), off.
     */
    lint: z.enum(['off', 'warn', 'enforce']).default('warn'),
  })
  .prefault({});
