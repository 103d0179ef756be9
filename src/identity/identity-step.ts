import type { CheckRequest } from '../request/check-request';
import type { SPIFFEInput } from '../request/input-document';

/**
 * The decision pipeline's identity step. Returns the verified caller, null when the request presents
 * no SVID (the policy decides), and throws a VerdictError of the identity kind when an SVID is presented
 * but fails verification (deny before policy).
 */
export interface IdentityStep {
  identify(req: CheckRequest): SPIFFEInput | null | Promise<SPIFFEInput | null>;
}
