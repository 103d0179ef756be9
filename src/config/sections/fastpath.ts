import { z } from 'zod';

/** Kernel fast path (owned by src/fastpath/). Off by default. */
export const fastpathSchema = z
  .strictObject({
    enabled: z.boolean().default(false),
  })
  .prefault({});
