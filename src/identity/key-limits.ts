import type { KeyObject } from 'node:crypto';

/**
 * The public keys verdict checks signatures with — a certificate issuer's, a JWT bundle authority's, an OIDC
 * issuer's JWK — are those Go's crypto/x509 (SPIRE's) verifies, where a check costs little and the key is
 * not too weak to mean anything: RSA, ECDSA on a NIST curve, Ed25519. Presenting a key needs no private half.
 * RSA: a modulus of 2048 to 8192 bits (below 2048 is breakable, NIST SP 800-131A; jose refuses it for RS/PS
 * too, but only at verification and as a malformed token; 8192 is Go crypto/tls's bound since CVE-2023-29409)
 * and the exponent 65537 (what Go's rsa.GenerateKey, OpenSSL and the cloud KMSs make; Go's crypto/rsa takes
 * odd exponents up to 2^31-1, which cost up to ~3.5 times as much). Here an RSA-8192 check costs ~0.3 ms, a
 * 16384-bit key ~4 ms and with the exponent 2^64-1 ~6 ms. DSA (OpenSSL checks a p of up to 10,000 bits; Go
 * no longer verifies DSA), Ed448 and EC keys with explicit curve parameters or other curves are refused.
 */
export const MIN_RSA_MODULUS_BITS = 2048;
export const MAX_RSA_MODULUS_BITS = 8192;
const RSA_EXPONENT = 65537n;
const NAMED_CURVES = new Set(['secp224r1', 'prime256v1', 'secp384r1', 'secp521r1']);

/** Why verdict will not check signatures with `key` (a phrase: "is an RSA key of 1024 bits …"), or null. */
export function keyLimitProblem(key: KeyObject): string | null {
  const type = key.asymmetricKeyType ?? 'unknown';
  const details = key.asymmetricKeyDetails ?? {};
  if (type === 'rsa' || type === 'rsa-pss') {
    const bits = details.modulusLength ?? 0;
    if (bits < MIN_RSA_MODULUS_BITS) return `is an RSA key of ${bits} bits (at least ${MIN_RSA_MODULUS_BITS})`;
    if (bits > MAX_RSA_MODULUS_BITS) return `is an RSA key of ${bits} bits (at most ${MAX_RSA_MODULUS_BITS})`;
    if (details.publicExponent !== RSA_EXPONENT) return `has the RSA exponent ${details.publicExponent} (only 65537)`;
    return null;
  }
  if (type === 'ec') return NAMED_CURVES.has(details.namedCurve ?? '') ? null : `is on the curve ${details.namedCurve ?? '(explicit)'}`;
  if (type === 'ed25519') return null;
  return `is a ${type} key`;
}
