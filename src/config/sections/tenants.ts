import { z } from 'zod';
import { normalizeSelectorValue } from '../../tenancy/tenant-selector';
import { bundlesSchema } from './bundles';

/** How a request names its tenant (one rule for all tenants, so a request can never match two). */
const selectorSchema = z.discriminatedUnion('from', [
  /** A key of the route's context_extensions (Envoy's per-route ext_authz setting: set by the operator, not the caller). */
  z.strictObject({ from: z.literal('contextExtension'), key: z.string().min(1).max(256) }),
  /** The verified caller's SPIFFE trust domain (needs identity). */
  z.strictObject({ from: z.literal('trustDomain') }),
  /** The verified caller's SPIFFE ID: the longest configured prefix, at a path-segment boundary (needs identity). */
  z.strictObject({ from: z.literal('spiffeIDPrefix') }),
  /** The request's :authority (host), case-insensitive, without a port. */
  z.strictObject({ from: z.literal('authority') }),
]);

const tenantSchema = z.strictObject({
  /** Used in metric labels, log labels and the cache namespace. */
  name: z
    .string()
    .max(63)
    .regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, 'lowercase letters, digits, _ . - (max 63)'),
  /** Selector values that name this tenant. */
  match: z.array(z.string().min(1).max(1024)).min(1).max(1000),
  /** This tenant's bundle source and trust (the keys of the top-level `bundles` section; `source` is required). */
  bundles: bundlesSchema,
});

/**
 * `tenants` (owned by src/tenancy/): one bundle per tenant, chosen per request by `selector`; each with its own
 * source, signing keys and pins, cache, bundle info, counts and log label. A request naming no configured
 * tenant is denied (ERR_TENANT_UNKNOWN). Off (null) by default. See docs/tenancy.md.
 */
export const tenantsSchema = z
  .strictObject({
    selector: selectorSchema,
    /** Hard bound on the number of tenants (each holds a policy engine and a cache). */
    maxTenants: z.number().int().min(1).max(1000).default(100),
    /** Status of the deny for a request that names no configured tenant. */
    unknownStatus: z.number().int().min(200).max(599).default(403),
    /** Per-tenant decision cache bounds (cache.enabled still switches caching on or off). */
    cache: z
      .strictObject({
        maxEntries: z.number().int().min(1).max(10_000_000).default(10_000),
        maxBytes: z
          .number()
          .int()
          .min(1024)
          .max(4 * 1024 * 1024 * 1024)
          .default(8 * 1024 * 1024),
      })
      .prefault({}),
    list: z.array(tenantSchema).min(1),
  })
  .superRefine((s, ctx) => {
    if (s.list.length > s.maxTenants)
      ctx.addIssue({ code: 'custom', path: ['list'], message: `${s.list.length} tenants exceed maxTenants ${s.maxTenants}` });
    const names = new Set<string>();
    const values = new Map<string, string>();
    s.list.forEach((t, i) => {
      if (names.has(t.name)) ctx.addIssue({ code: 'custom', path: ['list', i, 'name'], message: `tenant ${t.name} is listed twice` });
      names.add(t.name);
      if (t.bundles.source === null)
        ctx.addIssue({ code: 'custom', path: ['list', i, 'bundles', 'source'], message: 'a tenant needs a bundle source' });
      for (const raw of t.match) {
        // Compared as looked up: `Acme.org` and `acme.org:443` are one authority.
        const v = normalizeSelectorValue(s.selector, raw);
        const owner = values.get(v);
        if (owner !== undefined && owner !== t.name)
          ctx.addIssue({ code: 'custom', path: ['list', i, 'match'], message: `"${raw}" already names tenant ${owner}` });
        values.set(v, t.name);
      }
    });
  })
  .nullable()
  .default(null);

export type TenantsConfig = NonNullable<z.infer<typeof tenantsSchema>>;
export type TenantConfig = z.infer<typeof tenantSchema>;
export type TenantSelector = z.infer<typeof selectorSchema>;
