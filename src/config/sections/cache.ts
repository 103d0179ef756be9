import { z } from 'zod';

/** Decision cache (owned by src/cache/). */
export const cacheSchema = z
  .strictObject({
    enabled: z.boolean().default(false),
  })
  .prefault({});
