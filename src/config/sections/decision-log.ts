import { z } from 'zod';

/** Decision logs (owned by src/decisionlog/). */
export const decisionLogSchema = z
  .strictObject({
    /** Write one JSON line per decision to stdout. */
    console: z.boolean().default(false),
  })
  .prefault({});
