import { z } from 'zod';

/** Per-engine settings beyond OPA's (Cedar, custom wasm). */
export const enginesSchema = z.strictObject({}).prefault({});
