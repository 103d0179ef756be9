import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK, type JWTPayload } from 'jose';

export interface IssuerKey {
  kid: string;
  privateKey: CryptoKey;
  publicJWK: JWK;
}

/**
 * A real OIDC-style issuer on 127.0.0.1:0: a discovery document (OIDC Discovery §4) naming a jwks_uri, and a
 * JWK Set that the test can rotate. Keys are minted at run time; tokens are signed with jose.
 */
export class TestOIDCIssuer {
  private server: Server | null = null;
  private published: IssuerKey[] = [];
  /** Requests served per path (discovery, jwks), so a test can see a refetch happen. */
  readonly hits = new Map<string, number>();
  issuer = '';

  static async start(): Promise<TestOIDCIssuer> {
    const i = new TestOIDCIssuer();
    await i.listen();
    return i;
  }

  async newKey(kid: string): Promise<IssuerKey> {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    return { kid, privateKey, publicJWK: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } };
  }

  /** Replaces the published JWK Set (key rotation). */
  publish(keys: IssuerKey[]): void {
    this.published = keys;
  }

  sign(key: IssuerKey, claims: JWTPayload, opts: { iss?: string; expiresInS?: number; audience?: string } = {}): Promise<string> {
    const nowS = Math.floor(Date.now() / 1000);
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'JWT' })
      .setIssuer(opts.iss ?? this.issuer)
      .setAudience(opts.audience ?? 'verdict')
      .setIssuedAt(nowS)
      .setExpirationTime(nowS + (opts.expiresInS ?? 300))
      .sign(key.privateKey);
  }

  close(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private listen(): Promise<void> {
    this.server = createServer((req, res) => {
      const path = req.url ?? '';
      this.hits.set(path, (this.hits.get(path) ?? 0) + 1);
      const body =
        path === '/.well-known/openid-configuration'
          ? { issuer: this.issuer, jwks_uri: `${this.issuer}/jwks`, id_token_signing_alg_values_supported: ['ES256'] }
          : path === '/jwks'
            ? { keys: this.published.map((k) => k.publicJWK) }
            : null;
      res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' });
      res.end(body ? JSON.stringify(body) : '{}');
    });
    return new Promise((resolve) => {
      this.server!.listen(0, '127.0.0.1', () => {
        this.issuer = `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
        resolve();
      });
    });
  }
}

/** An `alg: none` token (RFC 7519 §6: unsecured), which no verifier may accept. */
export function unsecuredToken(claims: JWTPayload, kid: string): string {
  const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${b64({ alg: 'none', kid, typ: 'JWT' })}.${b64(claims)}.`;
}
