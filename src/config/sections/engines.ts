import { z } from 'zod';
import { headerNameSchema } from './bounds';
import { DEFAULT_ENGINES_CONFIG } from './engines-defaults';

const defaults = DEFAULT_ENGINES_CONFIG;

/** Per-engine settings beyond OPA's (Cedar, custom wasm). See docs/engines.md. */
export const enginesSchema = z
  .strictObject({
    cedar: z
      .strictObject({
        /** Header carrying the determining Cedar policy ids (upstream on allow, response on deny); '' disables. */
        reasonsHeader: headerNameSchema.default(defaults.cedar.reasonsHeader),
        /** Entities passed per decision beyond which a request is denied (ERR_POLICY_EVAL): the cost bound. */
        maxEntitiesPerRequest: z.number().int().min(4).max(10_000).default(defaults.cedar.maxEntitiesPerRequest),
      })
      .prefault({}),
    wasm: z
      .strictObject({
        /** A custom engine call slower than this is stopped (its worker terminated) and denied. */
        timeoutMs: z.number().int().min(1).max(60_000).default(defaults.wasm.timeoutMs),
        /** Hard bound of a custom module's linear memory (64 KiB pages); the module must declare a maximum ≤ this. */
        maxMemoryPages: z.number().int().min(1).max(65_536).default(defaults.wasm.maxMemoryPages),
        /** Largest serialized input handed to a custom engine; larger inputs are denied. */
        maxInputBytes: z
          .number()
          .int()
          .min(1024)
          .max(64 * 1024 * 1024)
          .default(defaults.wasm.maxInputBytes),
        /** Largest JSON decision a custom engine may return. */
        maxOutputBytes: z
          .number()
          .int()
          .min(256)
          .max(16 * 1024 * 1024)
          .default(defaults.wasm.maxOutputBytes),
      })
      .prefault({}),
  })
  .prefault({});

export type EnginesConfig = z.infer<typeof enginesSchema>;
