import { z } from 'zod';
import { httpURLSchema, nameSchema, pathSchema } from './bounds';

/** Asymmetric JWS algorithms only: `none` and HMAC (a secret shared with every verifier) never verify a caller. */
export const OIDC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

const issuerSchema = z
  .strictObject({
    /** The exact `iss` value (OIDC Discovery §4.3: it must equal the discovery document's `issuer`). */
    issuer: z.string().min(1).max(2048),
    /** The issuer's JWK Set URL; with neither this nor jwksFile, discovery at `<issuer>/.well-known/openid-configuration`. */
    jwksUri: httpURLSchema.nullable().default(null),
    /** A static JWK Set file (read once at start-up), for issuers without an endpoint. */
    jwksFile: pathSchema.nullable().default(null),
    /** RFC 7519 §4.1.3: the token's `aud` must name one of these. */
    audiences: z.array(nameSchema.min(1)).min(1).max(100),
    algorithms: z.array(z.enum(OIDC_ALGORITHMS)).min(1).default(['RS256', 'ES256']),
    /** Tolerance on exp / nbf / iat for clock drift between issuer and verdict. */
    clockSkewSeconds: z.number().int().min(0).max(300).default(30),
    /** RFC 8693 §4.1 `act` nesting allowed; a deeper chain is refused (ERR_TOKEN_ACT_DEPTH). */
    maxActDepth: z.number().int().min(0).max(16).default(4),
    keys: z
      .strictObject({
        /** Refetch the JWK Set once it is this old (rotation). */
        maxAgeMs: z.number().int().min(1_000).max(86_400_000).default(300_000),
        /** An unknown `kid` refetches at most this often (a flood of made-up kids cannot flood the issuer). */
        refreshCooldownMs: z.number().int().min(0).max(3_600_000).default(30_000),
        fetchTimeoutMs: z.number().int().min(100).max(60_000).default(5_000),
        /** Bound on the discovery document and on the JWK Set, each. */
        maxBytes: z
          .number()
          .int()
          .min(512)
          .max(1024 * 1024)
          .default(64 * 1024),
        maxKeys: z.number().int().min(1).max(1000).default(64),
      })
      .prefault({}),
  })
  .superRefine((s, ctx) => {
    if (s.jwksUri !== null && s.jwksFile !== null)
      ctx.addIssue({ code: 'custom', path: ['jwksFile'], message: 'give jwksUri or jwksFile, not both' });
    if (s.jwksUri === null && s.jwksFile === null && !/^https?:\/\//.test(s.issuer))
      ctx.addIssue({ code: 'custom', path: ['issuer'], message: 'discovery needs an http(s) issuer URL (or give jwksUri / jwksFile)' });
  });

/** `identity.jwt.issuers`: OIDC / JWT issuers whose tokens verdict verifies into `input.token` (docs/tokens.md). */
export const jwtIssuersSchema = z
  .array(issuerSchema)
  .max(32)
  .default([])
  .superRefine((list, ctx) => {
    const seen = new Set<string>();
    list.forEach((s, i) => {
      if (seen.has(s.issuer)) ctx.addIssue({ code: 'custom', path: [i, 'issuer'], message: `issuer ${s.issuer} is listed twice` });
      seen.add(s.issuer);
    });
  });

export type JWTIssuerConfig = z.infer<typeof issuerSchema>;
