import { z } from 'zod';
import { bundlesSchema } from './bundles';

/**
 * `policy.shadow` (owned by src/shadow/): a candidate bundle followed from its own source with its own trust
 * (the same keys as the top-level `bundles` section), evaluated beside the active one on a sample of live
 * requests after each answer is sent. Off (null) by default. See docs/shadow.md.
 */
/** A fraction; from a flag or env var it arrives as a string (`--set policy.shadow.sampleRate=0.05`). */
const fraction = z
  .union([
    z.number(),
    z
      .string()
      .max(32)
      .regex(/^\d*\.?\d+$/)
      .transform(Number),
  ])
  .pipe(z.number().min(0).max(1));

export const shadowSchema = z
  .strictObject({
    /** Where the candidate comes from and what makes it trusted: the `bundles` section's keys; `source` is required. */
    bundles: bundlesSchema,
    /** Fraction of decided requests re-evaluated with the candidate (0 = none, 1 = all). */
    sampleRate: fraction.default(0.1),
    /** Sampled requests waiting for the candidate; past this they are dropped and counted (outcome="dropped"). */
    maxQueue: z.number().int().min(1).max(1_000_000).default(1024),
    /**
     * Bytes of sampled requests (their CheckRequests as received) waiting for the candidate; past this they are
     * dropped and counted too. Each waiting request holds its decoded CheckRequest and input document.
     */
    maxQueueBytes: z
      .number()
      .int()
      .min(64 * 1024)
      .max(4 * 1024 * 1024 * 1024)
      .default(64 * 1024 * 1024),
    /** Share of one core the candidate may use, averaged over a second; beyond it the queue waits (and fills). */
    maxCPUShare: fraction.pipe(z.number().gt(0)).default(0.25),
  })
  .superRefine((s, ctx) => {
    if (s.bundles.source === null)
      ctx.addIssue({ code: 'custom', path: ['bundles', 'source'], message: 'policy.shadow needs a bundle source for the candidate' });
  })
  .nullable()
  .default(null);

export type ShadowConfig = NonNullable<z.infer<typeof shadowSchema>>;
