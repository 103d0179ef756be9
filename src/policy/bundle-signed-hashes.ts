/** A large file's hash, computed where it was untarred, with the algorithm its (not yet verified) listing names. */
export interface PrecomputedHash {
  algorithm: 'sha256' | 'sha384' | 'sha512';
  /** Lower-case hex, or why the file could not be hashed (data.json that is not JSON). */
  hash: string | { error: string };
}

/**
 * Hashes every file of `minBytes` or more the way OPA's signature lists it, reading the algorithm from the
 * claims of `.signatures.json` *without verifying them*: it only saves the event loop from handing a large
 * file to another worker. The main thread verifies the JWT and then uses a hash only if the signed listing
 * names the same algorithm (bundle-signature-opa.ts); anything this skips is hashed there as before.
 * data.json and .manifest are hashed in canonical JSON form (`hashStructured`: canonicalJSONWrite into the
 * hash). Self-contained: node:crypto and the canonicalizer are handed in, so it runs in the bundle worker
 * from its source text.
 */
export function precomputeSignedHashes(
  files: readonly (readonly [string, Uint8Array])[],
  minBytes: number,
  crypto: typeof import('node:crypto'),
  hashStructured: (data: Uint8Array, h: import('node:crypto').Hash) => void,
): [string, PrecomputedHash][] {
  const ALGORITHMS: Record<string, PrecomputedHash['algorithm']> = { 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512' };
  const sig = files.find(([name]) => name === '.signatures.json');
  let listed: unknown;
  try {
    const token = (JSON.parse(Buffer.from(sig?.[1] ?? []).toString('utf8')) as { signatures: string[] }).signatures[0] as string;
    listed = (JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString('utf8')) as { files: unknown }).files;
  } catch {
    return [];
  }
  if (!Array.isArray(listed)) return [];
  const algorithmOf = new Map<string, PrecomputedHash['algorithm']>();
  for (const f of listed as { name?: unknown; algorithm?: unknown }[]) {
    const algorithm = typeof f?.algorithm === 'string' && Object.hasOwn(ALGORITHMS, f.algorithm) ? ALGORITHMS[f.algorithm] : undefined;
    if (typeof f?.name === 'string' && algorithm !== undefined) algorithmOf.set(f.name.replace(/^\//, ''), algorithm);
  }
  const out: [string, PrecomputedHash][] = [];
  for (const [name, data] of files) {
    const algorithm = algorithmOf.get(name);
    if (data.length < minBytes || algorithm === undefined) continue;
    const base = name.slice(name.lastIndexOf('/') + 1);
    const h = crypto.createHash(algorithm);
    try {
      if (base === 'data.json' || base === '.manifest') hashStructured(data, h);
      else h.update(data);
      out.push([name, { algorithm, hash: h.digest('hex') }]);
    } catch (err) {
      out.push([name, { algorithm, hash: { error: err instanceof Error ? err.message : String(err) } }]);
    }
  }
  return out;
}
