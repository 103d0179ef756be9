import { z } from 'zod';
import { headerValueSchema, httpURLSchema, nameSchema, pathSchema } from './bounds';

/**
 * Where policy bundles come from and what makes one trusted (owned by src/policy/bundle-*). Every source
 * is off by default: with `source: null` verdict serves `policy.bundle` or the embedded default bundle.
 */
const sha256Hex = z
  .string()
  .max(64)
  .regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex characters');
const ociDigest = z
  .string()
  .max(71)
  .regex(/^sha256:[0-9a-f]{64}$/, 'expected sha256:<64 hex>');
const delays = {
  /** Polls wait a uniformly random time between these two (OPA's min/max_delay_seconds), in ms. */
  minDelayMs: z.number().int().min(1).max(86_400_000).default(30_000),
  maxDelayMs: z.number().int().min(1).max(86_400_000).default(60_000),
  /** Per request. */
  timeoutMs: z.number().int().min(1).max(300_000).default(10_000),
};

const fileSource = z.strictObject({
  type: z.literal('file'),
  /** The bundle .tar.gz; replaced atomically (write elsewhere, rename over it) to publish a new one. */
  path: pathSchema,
  /** cosign signature beside it (default `<path>.sig` when a cosign key is configured). */
  signaturePath: pathSchema.nullable().default(null),
  /** Changes within this window are read once. */
  debounceMs: z.number().int().min(0).max(60_000).default(200),
});

const httpSource = z.strictObject({
  type: z.literal('http'),
  /** The bundle resource of an OPA bundle service (GET, ETag / If-None-Match). Only http: and https:. */
  url: httpURLSchema,
  /** cosign signature URL (default `<url>.sig` when a cosign key is configured). */
  signatureUrl: httpURLSchema.nullable().default(null),
  /** Value of the Authorization header (never logged). */
  authorization: headerValueSchema.min(1).nullable().default(null),
  ...delays,
});

const ociSource = z.strictObject({
  type: z.literal('oci'),
  /** Registry base URL, e.g. https://ghcr.io or http://127.0.0.1:5000 (plain HTTP for loopback tests). */
  registry: httpURLSchema,
  repository: z
    .string()
    .max(255)
    .regex(/^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/),
  /**
   * A tag, or a manifest digest (sha256:…) to pull by digest, in the OCI distribution spec's grammar: it is a
   * path segment of every request, so '/', '..', '?' or '#' would name another resource.
   */
  reference: z
    .string()
    .max(128)
    .regex(/^(?:[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}|sha256:[0-9a-f]{64})$/, 'a tag ([a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}) or sha256:<64 hex>'),
  /** Pin: the manifest must have this digest (guards a moving tag). */
  digest: ociDigest.nullable().default(null),
  authorization: headerValueSchema.min(1).nullable().default(null),
  ...delays,
});

const opaKey = z.strictObject({
  algorithm: z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512']).default('RS256'),
  /** PEM public key file. */
  keyFile: pathSchema,
  scope: nameSchema.min(1).optional(),
});

export const bundlesSchema = z
  .strictObject({
    source: z.discriminatedUnion('type', [fileSource, httpSource, ociSource]).nullable().default(null),
    /** Pin: refuse any bundle file whose sha256 differs, even if it is signed (replay of an old signed bundle). */
    sha256: sha256Hex.nullable().default(null),
    /** OPA bundle signing (.signatures.json). When set, unsigned bundles are refused. */
    opaSigning: z
      .strictObject({
        /** At least one: with none, every bundle would be refused (unsigned, or signed by an unknown key). */
        keys: z.record(nameSchema.min(1), opaKey).refine((keys) => Object.keys(keys).length > 0, { message: 'needs at least one key' }),
        /** Use this key id whatever the JWT names. */
        keyId: nameSchema.min(1).optional(),
        scope: nameSchema.min(1).optional(),
      })
      .nullable()
      .default(null),
    /** cosign sign-blob signature over the bundle file, verified with this PEM public key. When set, unsigned bundles are refused. */
    cosign: z.strictObject({ publicKeyFile: pathSchema }).nullable().default(null),
    /** Refuse a signed bundle whose signing time (iat) is older than the active bundle's (rollback). */
    rejectOlderSignatures: z.boolean().default(true),
    /** Keep the last good bundle here so a restart works while the source is down. null: no persistence. */
    persistDir: pathSchema.nullable().default(null),
    /**
     * Deadline of each load step of one bundle (read and verify, instantiate and start function, self-test).
     * A step past it refuses the bundle (ERR_BUNDLE_LOAD_TIMEOUT) and frees the load queue.
     */
    loadTimeoutMs: z.number().int().min(10).max(600_000).default(10_000),
    limits: z
      .strictObject({
        maxCompressedBytes: z
          .number()
          .int()
          .min(1024)
          .max(1024 * 1024 * 1024)
          .default(32 * 1024 * 1024),
        maxUncompressedBytes: z
          .number()
          .int()
          .min(1024)
          .max(4 * 1024 * 1024 * 1024)
          .default(128 * 1024 * 1024),
        /** Tar entries of any kind (files and directories). */
        maxFiles: z.number().int().min(1).max(1_000_000).default(10_000),
        /** One file inside the bundle (checked on its tar header and while streaming). */
        maxFileBytes: z
          .number()
          .int()
          .min(1024)
          .max(4 * 1024 * 1024 * 1024)
          .default(64 * 1024 * 1024),
        /** Path segments of one tar entry. */
        maxPathDepth: z.number().int().min(1).max(256).default(32),
      })
      .prefault({}),
  })
  .prefault({});

export type BundlesConfig = z.infer<typeof bundlesSchema>;
