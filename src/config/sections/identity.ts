import { z } from 'zod';
import { headerNameSchema, nameSchema, pathSchema, socketTargetSchema } from './bounds';
import { jwtIssuersSchema } from './jwt-issuers';

const httpStatus = z.number().int().min(200).max(599);
const spiffeIDPattern = z
  .string()
  .max(2048)
  .regex(/^spiffe:\/\/[^/?#]+(\/.*)?$/, 'must be a SPIFFE ID, optionally ending in /*');

/**
 * SPIFFE identity (owned by src/identity/). Off by default, so verdict starts without SPIRE; when on, it
 * needs a trust source: the Workload API socket (SPIFFE_ENDPOINT_SOCKET) and/or static bundle files.
 */
export const identitySchema = z
  .strictObject({
    enabled: z.boolean().default(false),
    workloadAPI: z
      .strictObject({
        /** `unix:///path`, `unix:/path` or a plain path; null = no Workload API (env SPIFFE_ENDPOINT_SOCKET). */
        socket: socketTargetSchema.nullable().default(null),
        /** First reconnect delay after the agent goes away; doubles up to reconnectMaxMs (with jitter). */
        reconnectInitialMs: z.number().int().min(10).max(60_000).default(250),
        reconnectMaxMs: z.number().int().min(10).max(600_000).default(10_000),
        /** Bundles count as stale (not ready, verification denied) once the stream has been down this long. */
        bundleStalenessMs: z.number().int().min(1_000).max(86_400_000).default(300_000),
      })
      .prefault({}),
    /** Trust bundles from files: PEM certificates or a SPIFFE bundle (JWK set). For federation or without SPIRE. */
    staticBundles: z
      .array(z.strictObject({ trustDomain: nameSchema.min(1), path: pathSchema }))
      .max(1000)
      .default([]),
    x509: z
      .strictObject({
        /** Verify the certificate Envoy forwards in attributes.source.certificate (include_peer_certificate). */
        enabled: z.boolean().default(true),
        /** Status of the deny when a presented X.509-SVID fails verification. */
        failureStatus: httpStatus.default(403),
        maxPathLength: z.number().int().min(1).max(16).default(8),
        /** Most issuer candidates examined per verification (bounded work against hostile chains). */
        maxCandidates: z.number().int().min(1).max(1000).default(32),
        /**
         * Path-building candidates besides what the caller presents (Envoy forwards only the leaf). Each must
         * itself chain to the trust domain's bundle; see docs/identity.md "Intermediates".
         */
        intermediates: z
          .strictObject({
            /** The chain of verdict's own X509-SVID from the Workload API, for callers of its trust domain. */
            fromWorkloadAPI: z.boolean().default(false),
            /**
             * Read `x-forwarded-client-cert` `Chain=`. Only when Envoy sanitizes and sets that header
             * (`forward_client_cert_details: SANITIZE_SET`, `set_current_client_cert_details.chain: true`).
             */
            trustXFCCChain: z.boolean().default(false),
            /** PEM files of intermediates, read at start. */
            files: z.array(pathSchema).max(100).default([]),
          })
          .prefault({}),
      })
      .prefault({}),
    jwt: z
      .strictObject({
        /** Verify a JWT-SVID from `header` (on when audiences are configured). */
        enabled: z.boolean().default(true),
        header: headerNameSchema
          .min(1)
          .transform((h) => h.toLowerCase())
          .default('authorization'),
        /** Scheme before the token in the header (`Bearer`); "" = the whole value is the token. */
        scheme: nameSchema.default('Bearer'),
        /** JWT-SVID §3.2: verdict's audiences; a token must name one of them. */
        audiences: z.array(nameSchema.min(1)).max(100).default([]),
        algorithms: z
          .array(z.enum(['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512']))
          .min(1)
          .default(['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512']),
        /** Status of the deny when a presented JWT-SVID fails verification. */
        failureStatus: httpStatus.default(401),
        maxTokenBytes: z
          .number()
          .int()
          .min(256)
          .max(1024 * 1024)
          .default(16 * 1024),
        /** OIDC / JWT issuers (not SPIFFE) verified into input.token; chosen by the token's `iss` (docs/tokens.md). */
        issuers: jwtIssuersSchema,
      })
      .prefault({}),
    /** Accept attributes.source.principal as an identity Envoy already verified (only if Envoy does mTLS with SPIFFE). */
    trustEnvoyPrincipal: z.boolean().default(false),
    /** Verified SVIDs kept by document hash. */
    cacheMaxEntries: z.number().int().min(0).max(10_000_000).default(10_000),
    /** verdict's own listener: mTLS with verdict's X.509-SVID from the Workload API. */
    mtls: z
      .strictObject({
        enabled: z.boolean().default(false),
        /** Callers allowed to connect: exact SPIFFE IDs or `spiffe://td/prefix/*`. */
        allowedCallers: z.array(spiffeIDPattern).max(10_000).default([]),
      })
      .prefault({}),
  })
  .superRefine((s, ctx) => {
    if (!s.enabled) return;
    if (s.workloadAPI.socket === null && s.staticBundles.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['workloadAPI', 'socket'], message: 'identity needs a Workload API socket or staticBundles' });
    }
    if (s.mtls.enabled && s.workloadAPI.socket === null) {
      ctx.addIssue({ code: 'custom', path: ['mtls', 'enabled'], message: "mTLS needs the Workload API (verdict's own SVID)" });
    }
    if (s.x509.intermediates.fromWorkloadAPI && s.workloadAPI.socket === null) {
      ctx.addIssue({ code: 'custom', path: ['x509', 'intermediates', 'fromWorkloadAPI'], message: 'needs the Workload API socket' });
    }
    if (s.mtls.enabled && s.mtls.allowedCallers.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['mtls', 'allowedCallers'], message: 'mTLS needs at least one allowed caller' });
    }
    if (s.workloadAPI.reconnectMaxMs < s.workloadAPI.reconnectInitialMs) {
      ctx.addIssue({ code: 'custom', path: ['workloadAPI', 'reconnectMaxMs'], message: 'must be >= reconnectInitialMs' });
    }
  })
  .prefault({});

export type IdentityConfig = z.infer<typeof identitySchema>;
