import type { X509Certificate } from 'node:crypto';
import { VerdictError } from '../errors';
import { readConfiguredFile } from '../policy/bundle-file-read';
import { parseSPIFFEID } from './spiffe-id';
import { parsePEMCertificates } from './trust-bundle';

/**
 * Path-building candidates that a caller did not present (Envoy forwards only the leaf). Untrusted by
 * construction: a candidate only helps when it chains to the trust domain's bundle and passes every rule.
 */
export interface IntermediateSource {
  intermediatesFor(trustDomain: string): readonly X509Certificate[];
}

export const NO_INTERMEDIATES: IntermediateSource = Object.freeze({ intermediatesFor: () => [] });

/** A fixed list, for any trust domain (a configured file; a test). */
export function fixedIntermediates(certs: readonly X509Certificate[]): IntermediateSource {
  const frozen = Object.freeze([...certs]);
  return { intermediatesFor: () => frozen };
}

/** PEM files of intermediates, read once at start; a file that does not read or parse stops start-up. */
export function intermediatesFromFiles(paths: readonly string[]): IntermediateSource {
  const certs = paths.flatMap((path) => {
    const text = readConfiguredFile(path, 'intermediates file').toString('utf8');
    const parsed = parsePEMCertificates(text, `intermediates file ${path}`);
    if (parsed.length === 0) throw new VerdictError('ERR_CONFIG', `intermediates file ${path} holds no CERTIFICATE block`);
    return parsed;
  });
  return fixedIntermediates(certs);
}

/** Where verdict's own X509-SVID comes from (the Workload API client). */
export interface OwnSVIDHolder {
  readonly currentX509SVID: { spiffeID: string; certificates: readonly X509Certificate[] } | null;
}

/**
 * The intermediates of verdict's own X509-SVID (Workload API §5.4: the chain after the leaf), offered for
 * callers of the same trust domain: with SPIRE behind an UpstreamAuthority every workload of the domain
 * chains through the same intermediate(s). Read at each call, so a rotation is picked up at once.
 */
export function ownSVIDIntermediates(holder: OwnSVIDHolder): IntermediateSource {
  return {
    intermediatesFor(trustDomain: string): readonly X509Certificate[] {
      const own = holder.currentX509SVID;
      if (!own || parseSPIFFEID(own.spiffeID).trustDomain !== trustDomain) return [];
      return own.certificates.slice(1);
    },
  };
}

export function combinedIntermediates(sources: readonly IntermediateSource[]): IntermediateSource {
  if (sources.length === 0) return NO_INTERMEDIATES;
  if (sources.length === 1) return sources[0] as IntermediateSource;
  return { intermediatesFor: (td) => sources.flatMap((s) => s.intermediatesFor(td)) };
}
