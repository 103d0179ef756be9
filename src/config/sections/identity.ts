import { z } from 'zod';

/** SPIFFE identity (owned by src/identity/). Off until a trust source is configured. */
export const identitySchema = z
  .strictObject({
    enabled: z.boolean().default(false),
  })
  .prefault({});
