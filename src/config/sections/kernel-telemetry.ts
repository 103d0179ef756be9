import { z } from 'zod';
import { pathSchema, socketTargetSchema } from './bounds';

/** One row of the identity table: a workload's cgroup and how its SPIFFE ID is known. */
const identityRow = z
  .strictObject({
    /** cgroup v2 directory of the workload (its id is the directory's inode, read at start and when unknown ids appear). */
    cgroupPath: z.string().min(1).max(512),
    /** The SPIFFE ID, configured. */
    spiffeId: z.string().startsWith('spiffe://').max(2048).optional(),
    /** Or: the address the workload's connections come from; the SPIFFE ID is the verified SVID verdict saw from it. */
    sourceAddress: z.string().min(2).max(64).optional(),
    /** Or: the SPIRE agent says, for the cgroup's processes (needs kernelTelemetry.delegatedIdentity.enabled). */
    delegatedIdentity: z.literal(true).optional(),
  })
  .refine((r) => [r.spiffeId, r.sourceAddress, r.delegatedIdentity].filter((v) => v !== undefined).length === 1, {
    message: 'an identity row names exactly one of spiffeId, sourceAddress or delegatedIdentity: true',
  });

/** Binding cgroups to SPIFFE IDs through the SPIRE agent's Delegated Identity API (docs/kernel-telemetry.md "Identity"). */
const delegatedIdentity = z
  .strictObject({
    /** Off by default: the agent must serve admin_socket_path and list verdict's SPIFFE ID in authorized_delegates. */
    enabled: z.boolean().default(false),
    /** The agent's admin socket (admin_socket_path, not the Workload API socket): `unix:///path` or a path. */
    socket: socketTargetSchema.nullable().default(null),
    /** Per cgroup, this many of its processes get a stream; their IDs must agree, else the cgroup is unknown. */
    pidsPerCgroup: z.number().int().min(1).max(8).default(2),
    /** How often each cgroup's followed processes are checked (exited, moved, PID reused) and free slots refilled. */
    pidCheckIntervalMs: z.number().int().min(100).max(60_000).default(1000),
    /** First retry of a failed stream; doubles up to reconnectMaxMs (with jitter). */
    reconnectInitialMs: z.number().int().min(10).max(60_000).default(250),
    reconnectMaxMs: z.number().int().min(10).max(600_000).default(10_000),
    /** An ID from a stream that has been down this long no longer binds its cgroup (unknown until the agent answers again). */
    stalenessMs: z.number().int().min(1000).max(86_400_000).default(60_000),
  })
  .prefault({});

/** Kernel telemetry (owned by src/kerneltelemetry/). Off by default, so nothing changes for existing users. */
export const kernelTelemetrySchema = z
  .strictObject({
    enabled: z.boolean().default(false),
    /** cgroup v2 directory the programs attach to; every workload cgroup to observe is it or below it. */
    cgroupPath: pathSchema.nullable().default(null),
    /** bpffs directory for the pinned aggregate maps; null: not pinned. */
    pinPath: pathSchema.nullable().default('/sys/fs/bpf/verdict-telemetry'),
    /** When true, telemetry that cannot start stops verdict (ERR_KERNEL_TELEMETRY_UNAVAILABLE). */
    required: z.boolean().default(false),
    /** Bound of the kernel (cgroup, destination) aggregate map (LRU, per CPU). */
    maxEntries: z.number().int().min(16).max(1_048_576).default(16_384),
    /** Scrape cost cap: at most this many aggregates are read per kernel read. */
    readMaxEntries: z.number().int().min(1).max(1_048_576).default(16_384),
    /** Reads closer together than this reuse the last one (many scrapers cost one read). */
    minReadIntervalMs: z.number().int().min(0).max(600_000).default(1000),
    /** Background read (drift detection runs even when nobody scrapes). 0: only scrapes read. */
    pollIntervalMs: z.number().int().min(0).max(3_600_000).default(10_000),
    /** Per identity, this many destinations get their own series; the rest are folded into destination="other". */
    topDestinations: z.number().int().min(0).max(1000).default(20),
    /** Scrape cost cap: at most this many (spiffe_id, destination) series in all; past it new destinations fold into "other". */
    maxSeries: z.number().int().min(1).max(100_000).default(10_000),
    identities: z.array(identityRow).max(1024).default([]),
    delegatedIdentity,
    drift: z
      .strictObject({
        enabled: z.boolean().default(true),
        /** A connection is explained by an allow decision for (identity, destination) made this recently. */
        windowMs: z.number().int().min(1).max(86_400_000).default(300_000),
        /** New connections are judged only after this long (the Check for a connection can follow its handshake). */
        graceMs: z.number().int().min(0).max(600_000).default(2_000),
        /** Bound of the allow index (LRU). */
        maxTracked: z.number().int().min(1).max(4_194_304).default(100_000),
        /** At most this many decision-log observation events per read; the rest are counted only. */
        maxEventsPerRead: z.number().int().min(0).max(100_000).default(100),
      })
      .prefault({}),
  })
  .refine((s) => !s.enabled || s.cgroupPath !== null, {
    message: 'kernelTelemetry.enabled needs kernelTelemetry.cgroupPath (the cgroup v2 group to observe)',
    path: ['cgroupPath'],
  })
  .refine((s) => !s.identities.some((r) => r.delegatedIdentity) || (s.delegatedIdentity.enabled && s.delegatedIdentity.socket !== null), {
    message: 'an identity row with delegatedIdentity: true needs kernelTelemetry.delegatedIdentity.enabled and its socket',
    path: ['delegatedIdentity'],
  })
  .refine((s) => s.delegatedIdentity.reconnectInitialMs <= s.delegatedIdentity.reconnectMaxMs, {
    message: 'kernelTelemetry.delegatedIdentity.reconnectInitialMs must not exceed reconnectMaxMs',
    path: ['delegatedIdentity', 'reconnectInitialMs'],
  })
  .prefault({});

export type KernelTelemetryConfig = z.infer<typeof kernelTelemetrySchema>;
