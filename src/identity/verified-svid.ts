import type { SPIFFEInput } from '../request/input-document';
import type { SPIFFEID } from './spiffe-id';
import type { TrustBundle } from './trust-bundle';

/** A verified SVID: who, by which kind of document, until when, and against which bundle. */
export interface VerifiedSVID {
  readonly spiffeID: SPIFFEID;
  readonly svidType: 'x509' | 'jwt';
  /** When the SVID itself expires (leaf notAfter, or JWT exp). */
  readonly expiresAtMs: number;
  /** Until when the verification holds (the earliest expiry along the chain). */
  readonly validUntilMs: number;
  /** The bundle it chained to; a different bundle for the trust domain invalidates the result. */
  readonly bundle: TrustBundle;
}

const inputs = new WeakMap<VerifiedSVID, SPIFFEInput>();

/** The policy input's `spiffe` block; built once per verified SVID (a cached caller reuses it), frozen. */
export function toSPIFFEInput(svid: VerifiedSVID): SPIFFEInput {
  let input = inputs.get(svid);
  if (!input) {
    input = Object.freeze({
      id: svid.spiffeID.id,
      trust_domain: svid.spiffeID.trustDomain,
      path: svid.spiffeID.path,
      svid_type: svid.svidType,
      expires_at: new Date(svid.expiresAtMs).toISOString(),
    });
    inputs.set(svid, input);
  }
  return input;
}
