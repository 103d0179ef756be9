import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { createLocalJWKSet, type JSONWebKeySet, type JWK, type JWTVerifyGetKey } from 'jose';
import type { Clock } from '../clock';
import type { JWTIssuerConfig } from '../config/sections/jwt-issuers';
import { VerdictError, toVerdictError } from '../errors';
import { readConfiguredFile } from '../policy/bundle-file-read';
import { readBodyBounded } from '../policy/bundle-source';
import { quoteShort } from './jws-compact';
import { keyLimitProblem } from './key-limits';

/** One fetched (or static) JWK Set, indexed for the `kid` check. */
interface KeySet {
  kids: ReadonlySet<string>;
  /** Kids of keys set aside (RFC 7517 §5: out of the supported ranges), with why: the refusal says so. */
  ignored: ReadonlyMap<string, string>;
  getKey: JWTVerifyGetKey;
  fetchedAtMs: number;
}

/** A JWK Set as parsed: the keys verdict uses, and those it set aside. */
interface ParsedKeySet {
  set: JSONWebKeySet;
  ignored: Map<string, string>;
}

/**
 * An issuer's signing keys: the JWK Set from its discovery document (OIDC Discovery §3 `jwks_uri`), a
 * configured URL, or a static file. Cached; refetched when older than keys.maxAgeMs (rotation) and when a token
 * names a kid the set lacks (at most once per refreshCooldownMs). Fetches are bounded in bytes and time, follow
 * no redirects, and are single-flight. A failed refresh keeps the last good set (a refusal never takes the good
 * state down); with no set at all, tokens of this issuer are refused with ERR_TOKEN_JWKS.
 */
export class OIDCIssuerKeys {
  private current: KeySet | null = null;
  private inFlight: Promise<KeySet> | null = null;
  private lastAttemptMs = -Infinity;

  constructor(
    private readonly config: JWTIssuerConfig,
    private readonly clock: Clock,
  ) {
    if (config.jwksFile !== null) this.current = this.index(readStaticSet(config.jwksFile, config.keys), clock.nowMs());
  }

  /** The key-selection function for a token whose header names `kid`; refreshes as described above. */
  async keyFor(kid: string): Promise<JWTVerifyGetKey> {
    const now = this.clock.nowMs();
    let set = this.current;
    if (set === null || (this.config.jwksFile === null && now - set.fetchedAtMs >= this.config.keys.maxAgeMs))
      set = await this.refresh(set);
    if (!set.kids.has(kid) && this.config.jwksFile === null && now - this.lastAttemptMs >= this.config.keys.refreshCooldownMs) {
      set = await this.refresh(set);
    }
    const ignored = set.ignored.get(kid);
    if (ignored !== undefined)
      throw new VerdictError('ERR_TOKEN_JWKS', `the key of kid ${quoteShort(kid)} in the JWK Set of ${this.config.issuer} ${ignored}`);
    if (!set.kids.has(kid))
      throw new VerdictError('ERR_TOKEN_KEY_UNKNOWN', `kid ${quoteShort(kid)} is not in the JWK Set of ${this.config.issuer}`);
    return set.getKey;
  }

  /** Warms the cache at start-up so the first Check does not wait for the issuer (failures are retried on use). */
  prefetch(): Promise<void> {
    if (this.config.jwksFile !== null) return Promise.resolve();
    return this.refresh(null).then(
      () => undefined,
      () => undefined,
    );
  }

  private async refresh(fallback: KeySet | null): Promise<KeySet> {
    this.inFlight ??= this.fetchSet().finally(() => (this.inFlight = null));
    try {
      return await this.inFlight;
    } catch (err) {
      if (fallback !== null) return fallback;
      throw toVerdictError(err, 'ERR_TOKEN_JWKS');
    }
  }

  private async fetchSet(): Promise<KeySet> {
    this.lastAttemptMs = this.clock.nowMs();
    const uri = this.config.jwksUri ?? (await this.discoverJWKSURI());
    const set = parseKeySet(await this.fetchJSON(uri, 'JWK Set'), this.config.keys.maxKeys);
    this.current = this.index(set, this.clock.nowMs());
    return this.current;
  }

  /** OIDC Discovery §4: GET <issuer>/.well-known/openid-configuration; §4.3: its `issuer` must equal ours. */
  private async discoverJWKSURI(): Promise<string> {
    const url = `${this.config.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
    const doc = await this.fetchJSON(url, 'discovery document');
    if (doc.issuer !== this.config.issuer)
      throw new VerdictError('ERR_TOKEN_JWKS', `discovery document names issuer ${JSON.stringify(doc.issuer)}`);
    if (typeof doc.jwks_uri !== 'string' || !/^https?:\/\//.test(doc.jwks_uri))
      throw new VerdictError('ERR_TOKEN_JWKS', 'discovery document has no http(s) jwks_uri');
    return doc.jwks_uri;
  }

  private async fetchJSON(url: string, what: string): Promise<Record<string, unknown>> {
    const { fetchTimeoutMs, maxBytes } = this.config.keys;
    let body: Buffer;
    try {
      const res = await fetch(url, {
        redirect: 'error',
        signal: AbortSignal.timeout(fetchTimeoutMs),
        headers: { accept: 'application/json' },
      });
      if (!res.ok) {
        await res.body?.cancel();
        throw new VerdictError('ERR_TOKEN_JWKS', `${what} ${url} answered ${res.status}`);
      }
      body = await readBodyBounded(res, maxBytes, `${what} ${url}`);
    } catch (err) {
      // The bounded reader speaks in bundle codes; here every failure is the issuer's keys being unavailable.
      const e = toVerdictError(err, 'ERR_TOKEN_JWKS');
      throw e.code === 'ERR_TOKEN_JWKS' ? e : new VerdictError('ERR_TOKEN_JWKS', e.message, { cause: err });
    }
    return parseObject(body.toString('utf8'), `${what} ${url}`);
  }

  private index({ set, ignored }: ParsedKeySet, fetchedAtMs: number): KeySet {
    const kids = new Set(set.keys.map((k) => k.kid).filter((k): k is string => typeof k === 'string'));
    return { kids, ignored, getKey: createLocalJWKSet(set), fetchedAtMs };
  }
}

function readStaticSet(path: string, keys: JWTIssuerConfig['keys']): ParsedKeySet {
  // keys.maxBytes bounds the read itself: a larger file (or a device) is never read whole.
  const text = readConfiguredFile(path, 'JWK Set', keys.maxBytes).toString('utf8');
  return parseKeySet(parseObject(text, `JWK Set ${path}`), keys.maxKeys);
}

function parseObject(text: string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new VerdictError('ERR_TOKEN_JWKS', `${what} is not JSON`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new VerdictError('ERR_TOKEN_JWKS', `${what} is not a JSON object`);
  return v as Record<string, unknown>;
}

/**
 * RFC 7517 §5: `keys` is an array of JWKs. Keys without a kid are dropped: verdict selects by kid only. A key
 * that does not load, or is outside the bounds of key-limits.ts (an RSA modulus under 2048 or over 8192 bits,
 * another exponent than 65537, a curve or type Go does not verify), is set aside, as §5 says a key "out of
 * the supported ranges" should be ignored: the other keys of the set still verify.
 */
function parseKeySet(doc: Record<string, unknown>, maxKeys: number): ParsedKeySet {
  if (!Array.isArray(doc.keys)) throw new VerdictError('ERR_TOKEN_JWKS', 'JWK Set has no keys array');
  if (doc.keys.length > maxKeys) throw new VerdictError('ERR_TOKEN_JWKS', `JWK Set has ${doc.keys.length} keys (max ${maxKeys})`);
  const keys = (doc.keys as unknown[]).filter(
    (k): k is JWK => typeof k === 'object' && k !== null && typeof (k as JWK).kid === 'string' && typeof (k as JWK).kty === 'string',
  );
  // Private or symmetric material never belongs in a published set: refuse the set rather than trust it.
  if (keys.some((k) => k.kty === 'oct' || k.d !== undefined))
    throw new VerdictError('ERR_TOKEN_JWKS', 'JWK Set holds private or symmetric keys');
  const ignored = new Map<string, string>();
  const usable = keys.filter((k) => {
    const problem = jwkProblem(k);
    if (problem !== null) ignored.set(k.kid as string, problem);
    return problem === null;
  });
  return { set: { keys: usable }, ignored };
}

function jwkProblem(jwk: JWK): string | null {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
  } catch {
    return 'does not load';
  }
  return keyLimitProblem(key);
}
