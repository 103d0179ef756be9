/** A held file's hash, computed where it was untarred, with the algorithm the verified signature lists. */
export interface PrecomputedHash {
  algorithm: 'sha256' | 'sha384' | 'sha512';
  /** Lower-case hex, or why the file could not be hashed (data.json that is not JSON, a file not held). */
  hash: string | { error: string };
}

/** One held file to hash, as the signature (already verified) lists it. */
export interface HeldHashRequest {
  name: string;
  algorithm: PrecomputedHash['algorithm'];
  /** data.json / .manifest: hashed in OPA's canonical JSON form. */
  structured: boolean;
}

/**
 * Hashes the large files a bundle worker holds, each as `wanted` says: asked for only once the JWT over
 * the listing has verified (bundle-signature-opa.ts), so a bundle with a bad signature is refused before
 * any large file is read, and nothing here depends on claims not yet verified. Structured files go through
 * `hashStructured` (canonicalJSONWrite into the hash). Self-contained: node:crypto and the canonicalizer
 * are handed in, so it runs in the bundle worker from its source text.
 */
export function hashHeldFiles(
  held: readonly (readonly [string, Uint8Array])[],
  wanted: readonly HeldHashRequest[],
  crypto: typeof import('node:crypto'),
  hashStructured: (data: Uint8Array, h: import('node:crypto').Hash) => void,
): [string, PrecomputedHash][] {
  const byName = new Map<string, Uint8Array>(held.map(([name, data]) => [name, data]));
  return wanted.map(({ name, algorithm, structured }): [string, PrecomputedHash] => {
    const data = byName.get(name);
    if (data === undefined) return [name, { algorithm, hash: { error: 'not held by the bundle worker' } }];
    const h = crypto.createHash(algorithm);
    try {
      if (structured) hashStructured(data, h);
      else h.update(data);
      return [name, { algorithm, hash: h.digest('hex') }];
    } catch (err) {
      return [name, { algorithm, hash: { error: err instanceof Error ? err.message : String(err) } }];
    }
  });
}
