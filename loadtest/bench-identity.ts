/**
 * Identity verification cost, cold (a new caller: parse + path validation + signature) vs cached (the
 * identity step's SVIDCache: a sha256 of the presented document and an LRU lookup), for X509-SVIDs and
 * JWT-SVIDs, with test CAs minted at run time. Prints a table and returns the numbers.
 */
import { performance } from 'node:perf_hooks';
import { systemClock } from '../src/clock';
import { identitySchema } from '../src/config/sections/identity';
import { verifyJWTSVID } from '../src/identity/jwt-svid-verifier';
import { SPIFFEIdentityStep, decodeCertificateField } from '../src/identity/spiffe-identity-step';
import { StaticBundleSource } from '../src/identity/static-bundle-source';
import { parseSPIFFEBundle } from '../src/identity/trust-bundle';
import { verifyX509SVID } from '../src/identity/x509-svid-verifier';
import type { CheckRequest } from '../src/request/check-request';
import {
  createCA,
  createJWTAuthority,
  envoyCertificateField,
  issueX509SVID,
  mintJWTSVID,
  spiffeBundleJSON,
} from '../test/helpers/svid-authority';
import { runAsScript } from './lib/run-as-script';

const ID = 'spiffe://example.org/ns/default/sa/web';

async function timeUs(iterations: number, fn: () => unknown): Promise<number> {
  for (let i = 0; i < Math.min(200, iterations); i++) await fn(); // warm-up
  const start = performance.now();
  for (let i = 0; i < iterations; i++) await fn();
  return ((performance.now() - start) * 1000) / iterations;
}

const COLD_CALLERS = 300;

/** `n` Envoy certificate fields of distinct leaves (plus `chain` PEMs), and a separate warm-up set. */
async function distinctFields(
  n: number,
  mint: () => Promise<{ pem: string }>,
  chain: string[],
): Promise<{ warm: string[]; measured: string[] }> {
  const make = async (k: number): Promise<string[]> =>
    Promise.all(Array.from({ length: k }, async () => envoyCertificateField((await mint()).pem, ...chain)));
  return { warm: await make(50), measured: await make(n) };
}

export async function run(): Promise<Record<string, unknown>> {
  const ca = await createCA('example.org');
  const jwtKey = await createJWTAuthority('k1');
  const source = new StaticBundleSource([parseSPIFFEBundle('example.org', spiffeBundleJSON([ca], [jwtKey]))]);
  const svid = await issueX509SVID(ca, ID);
  const intermediate = await createCA('example.org intermediate', { parent: ca });
  const field = envoyCertificateField(svid.pem);
  const token = await mintJWTSVID(jwtKey, ID, { expiresInS: 3600 });
  const config = identitySchema.parse({
    enabled: true,
    staticBundles: [{ trustDomain: 'example.org', path: '/unused' }],
    jwt: { audiences: ['verdict'] },
  });
  const step = new SPIFFEIdentityStep({ config, bundles: source, clock: systemClock });
  const x509Req: CheckRequest = { attributes: { source: { certificate: field } } };
  const jwtReq: CheckRequest = { attributes: { request: { http: { headers: { authorization: `Bearer ${token}` } } } } };

  // Cold for a *new* caller, side by side: distinct leaves each seen once (the parse and link caches only
  // help with what repeats — the intermediate every caller of the domain presents, as in a real deployment).
  const direct = await distinctFields(COLD_CALLERS, () => issueX509SVID(ca, ID), []);
  const viaOne = await distinctFields(COLD_CALLERS, () => issueX509SVID(intermediate, ID), [intermediate.pem]);
  const coldOnce = (fields: string[]) => () => {
    const t0 = performance.now();
    for (const f of fields) verifyX509SVID(decodeCertificateField(f), source, { nowMs: Date.now() });
    return ((performance.now() - t0) * 1000) / fields.length;
  };
  coldOnce(direct.warm)();
  coldOnce(viaOne.warm)();
  const noneUs = coldOnce(direct.measured)();
  const oneUs = coldOnce(viaOne.measured)();
  const x509Cached = await timeUs(50_000, () => step.identify(x509Req));
  const jwtCold = await timeUs(2000, () => verifyJWTSVID(token, source, { nowMs: Date.now(), audiences: ['verdict'] }));
  const jwtCached = await timeUs(50_000, () => step.identify(jwtReq));

  const rows = [
    { svid: 'X509-SVID (P-256), new caller', cold_us: noneUs, cached_us: x509Cached, ratio: noneUs / x509Cached },
    { svid: 'JWT-SVID (ES256)', cold_us: jwtCold, cached_us: jwtCached, ratio: jwtCold / jwtCached },
  ];
  const chain = { cold_no_intermediate_us: noneUs, cold_one_intermediate_us: oneUs, ratio: oneUs / noneUs };
  console.log('identity verification, µs per call (cold = full verification; cached = repeat caller)');
  console.table(
    rows.map((r) => ({ ...r, cold_us: r.cold_us.toFixed(1), cached_us: r.cached_us.toFixed(2), ratio: `${r.ratio.toFixed(0)}×` })),
  );
  console.log(
    `X509-SVID cold verification of a new caller: no intermediate ${noneUs.toFixed(1)} µs, one presented intermediate ${oneUs.toFixed(1)} µs (${chain.ratio.toFixed(2)}×)`,
  );
  return { identity: rows, x509Chain: chain };
}

runAsScript(module, run);
