import { z } from 'zod';
import { pathSchema } from './bounds';

/** Kernel fast path (owned by src/fastpath/). Off by default, so the default start works anywhere. */
export const fastpathSchema = z
  .strictObject({
    enabled: z.boolean().default(false),
    /** cgroup v2 directory the connect programs attach to; every process in it (and below) is enforced. */
    cgroupPath: pathSchema.nullable().default(null),
    /** bpffs directory where the maps are pinned for `verdict fastpath status`; null: not pinned. */
    pinPath: pathSchema.nullable().default('/sys/fs/bpf/verdict'),
    /** When true, a fast path that cannot start stops verdict (ERR_FASTPATH_UNAVAILABLE) instead of running without it. */
    required: z.boolean().default(false),
    /** A (source, destination, port) verdict turns hot after this many identical decisions within hotWindowMs. */
    hotHits: z.number().int().min(1).max(1_000_000).default(3),
    hotWindowMs: z.number().int().min(1).max(3_600_000).default(10_000),
    /** Bound of the kernel verdict map (LRU: the least recently used entry goes first). */
    maxEntries: z.number().int().min(1).max(4_194_304).default(65_536),
    /** Bound of the user-space hotness tracker (LRU). */
    maxTracked: z.number().int().min(1).max(4_194_304).default(100_000),
    /** Upper bound on any kernel entry's life, whatever the bundle declares. */
    maxEntryTtlMs: z.number().int().min(1).max(86_400_000).default(60_000),
    /** Pending map writes are flushed in one batch of at most this many entries. */
    batchSize: z.number().int().min(1).max(65_536).default(1024),
  })
  .refine((s) => !s.enabled || s.cgroupPath !== null, {
    message: 'fastpath.enabled needs fastpath.cgroupPath (the cgroup v2 group to enforce)',
    path: ['cgroupPath'],
  })
  .prefault({});
