import { z } from 'zod';

/** Envoy's HTTP ext_authz protocol (http_service), served on its own listener. port null disables it. */
export const httpAuthzSchema = z
  .strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).nullable().default(null),
  })
  .prefault({});
