import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load-config';
import { startVerdict, type RunningVerdict } from '../../../src/main';
import { createLogger } from '../../../src/telemetry/logger';
import {
  createCA,
  createJWTAuthority,
  envoyCertificateField,
  issueX509SVID,
  mintJWTSVID,
  spiffeBundleJSON,
  type JWTAuthority,
  type TestCA,
} from '../../helpers/svid-authority';
import { buildTestBundle, checkClient, headerValue, httpCheckRequest, tempDir, type CheckClient } from '../../helpers/verdict-harness';

// Allows only a verified caller of example.org and echoes the spiffe block, so the test sees the input.
const POLICY = `package envoy.authz
import rego.v1
default allow := {"allowed": false, "http_status": 409}
allow := {"allowed": true, "headers": {"x-spiffe": json.marshal(input.spiffe)}} if input.spiffe.trust_domain == "example.org"
`;

const ID = 'spiffe://example.org/ns/default/sa/web';
let ca: TestCA;
let otherCA: TestCA;
let jwtKey: JWTAuthority;
let verdict: RunningVerdict;
let client: CheckClient;

/** verdict with identity on and a static SPIFFE bundle (no SPIRE): the whole path, real gRPC and real OPA. */
beforeAll(async () => {
  [ca, otherCA, jwtKey] = await Promise.all([createCA('example.org'), createCA('elsewhere'), createJWTAuthority('k1')]);
  const dir = tempDir();
  writeFileSync(join(dir, 'bundle.json'), spiffeBundleJSON([ca], [jwtKey]));
  writeFileSync(
    join(dir, 'verdict.yaml'),
    [
      'identity:',
      '  enabled: true',
      `  staticBundles: [{ trustDomain: example.org, path: ${join(dir, 'bundle.json')} }]`,
      '  jwt: { audiences: [verdict] }',
    ].join('\n'),
  );
  const config = loadConfig({
    file: join(dir, 'verdict.yaml'),
    overrides: [
      'server.grpc.port=0',
      'server.http.port=null',
      'log.level=silent',
      `policy.bundle=${await buildTestBundle({ 'p.rego': POLICY })}`,
    ],
  });
  verdict = await startVerdict(config, { logger: createLogger('silent') });
  client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
});

afterAll(async () => {
  client?.close();
  await verdict?.stop();
});

function withCertificate(field: string, headers: Record<string, string> = {}): Record<string, unknown> {
  const req = httpCheckRequest({ headers }) as { attributes: { source: Record<string, unknown> } };
  req.attributes.source.certificate = field;
  return req;
}

describe('SPIFFE identity step (through Check)', () => {
  it('puts a verified X509-SVID into input.spiffe', async () => {
    const svid = await issueX509SVID(ca, ID);
    const res = await client.check(withCertificate(envoyCertificateField(svid.pem)));
    expect(res.status?.code ?? 0).toBe(0);
    const spiffe = JSON.parse(headerValue(res.okResponse?.headers, 'x-spiffe') ?? '{}') as Record<string, string>;
    expect(spiffe).toEqual({
      id: ID,
      trust_domain: 'example.org',
      path: '/ns/default/sa/web',
      svid_type: 'x509',
      expires_at: new Date(Date.parse(svid.cert.validTo)).toISOString(),
    });
  });

  it('puts a verified JWT-SVID into input.spiffe', async () => {
    const token = await mintJWTSVID(jwtKey, ID);
    const res = await client.check(httpCheckRequest({ headers: { authorization: `Bearer ${token}` } }));
    expect(res.status?.code ?? 0).toBe(0);
    expect(JSON.parse(headerValue(res.okResponse?.headers, 'x-spiffe') ?? '{}')).toMatchObject({ id: ID, svid_type: 'jwt' });
  });

  it('no SVID presented: the policy decides (its own 409)', async () => {
    const res = await client.check(httpCheckRequest({}));
    expect(res.deniedResponse?.status?.code).toBe(409);
  });

  it.each([
    ['X.509 from an untrusted CA', 'x509', 403, 'ERR_SVID_UNTRUSTED'],
    ['X.509 expired', 'x509-expired', 403, 'ERR_SVID_EXPIRED'],
    ['JWT with the wrong audience', 'jwt-aud', 401, 'ERR_JWT_AUDIENCE'],
    ['garbage certificate field', 'garbage', 403, 'ERR_SVID_MALFORMED'],
  ])('a presented SVID that fails denies before policy: %s → %i %s', async (_name, kind, status, code) => {
    let req: Record<string, unknown>;
    if (kind === 'x509') req = withCertificate(envoyCertificateField((await issueX509SVID(otherCA, ID)).pem));
    else if (kind === 'x509-expired')
      req = withCertificate(
        envoyCertificateField(
          (await issueX509SVID(ca, ID, { notBefore: new Date(Date.now() - 7200_000), notAfter: new Date(Date.now() - 3600_000) })).pem,
        ),
      );
    else if (kind === 'jwt-aud')
      req = httpCheckRequest({ headers: { authorization: `Bearer ${await mintJWTSVID(jwtKey, ID, { audience: 'nope' })}` } });
    else req = withCertificate('%%%not-a-cert');
    const res = await client.check(req);
    expect(res.deniedResponse?.status?.code).toBe(status);
    expect(headerValue(res.deniedResponse?.headers, 'x-verdict-reason')).toBe(code);
  });

  it('a repeat caller is served from the cache, and the answer is the same', async () => {
    const field = envoyCertificateField((await issueX509SVID(ca, ID)).pem);
    const first = await client.check(withCertificate(field));
    const second = await client.check(withCertificate(field));
    expect(headerValue(second.okResponse?.headers, 'x-spiffe')).toBe(headerValue(first.okResponse?.headers, 'x-spiffe'));
  });
});
