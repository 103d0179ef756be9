import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A PEM certificate and key on disk (Envoy reads files) and in memory (Node clients read strings). */
export interface CertFiles {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
}

export interface TestPKI {
  dir: string;
  /** The trust bundle of example.org. */
  ca: CertFiles;
  /** Envoy's downstream serving cert (DNS localhost, URI spiffe://example.org/ns/default/sa/envoy). */
  envoy: CertFiles;
  /** verdict's serving cert for Envoy→verdict mTLS (DNS verdict.local). */
  verdict: CertFiles;
  /** X509-SVIDs of callers signed by the trusted CA. */
  frontend: CertFiles;
  backend: CertFiles;
  /** A client cert carrying the frontend's SPIFFE ID but signed by a CA nobody trusts. */
  untrusted: CertFiles;
}

export const FRONTEND_ID = 'spiffe://example.org/ns/default/sa/frontend';
export const BACKEND_ID = 'spiffe://example.org/ns/default/sa/backend';
export const ENVOY_ID = 'spiffe://example.org/ns/default/sa/envoy';

/**
 * Mints a test PKI at run time with the openssl CLI (Node has no X.509 issuing API): P-256 keys, a CA per
 * trust domain, and leaves shaped like X509-SVIDs (X509-SVID §4.3: one URI SAN; §4.4–4.5: not a CA,
 * digitalSignature key usage).
 */
export function mintTestPKI(dir: string): TestPKI {
  const ca = selfSignedCA(dir, 'ca', 'example.org test CA');
  const other = selfSignedCA(dir, 'other-ca', 'untrusted test CA');
  return {
    dir,
    ca,
    envoy: leaf(dir, 'envoy', ca, `URI:${ENVOY_ID},DNS:localhost,IP:127.0.0.1`),
    verdict: leaf(dir, 'verdict', ca, 'URI:spiffe://example.org/ns/verdict/sa/verdict,DNS:verdict.local'),
    frontend: leaf(dir, 'frontend', ca, `URI:${FRONTEND_ID}`),
    backend: leaf(dir, 'backend', ca, `URI:${BACKEND_ID}`),
    untrusted: leaf(dir, 'untrusted', other, `URI:${FRONTEND_ID}`),
  };
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function files(dir: string, name: string): CertFiles {
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}-key.pem`);
  return { certFile, keyFile, cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
}

function newKey(keyFile: string): void {
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyFile]);
}

function selfSignedCA(dir: string, name: string, cn: string): CertFiles {
  const keyFile = join(dir, `${name}-key.pem`);
  newKey(keyFile);
  openssl([
    'req',
    '-x509',
    '-new',
    '-key',
    keyFile,
    '-out',
    join(dir, `${name}.pem`),
    '-days',
    '2',
    '-subj',
    `/O=verdict-test/CN=${cn}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return files(dir, name);
}

function leaf(dir: string, name: string, ca: CertFiles, san: string): CertFiles {
  const keyFile = join(dir, `${name}-key.pem`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  newKey(keyFile);
  openssl(['req', '-new', '-key', keyFile, '-out', csr, '-subj', `/O=verdict-test/CN=${name}`]);
  writeFileSync(
    ext,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment,keyAgreement',
      'extendedKeyUsage=serverAuth,clientAuth',
      `subjectAltName=${san}`,
    ].join('\n'),
  );
  openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.certFile,
    '-CAkey',
    ca.keyFile,
    '-CAcreateserial',
    '-out',
    join(dir, `${name}.pem`),
    '-days',
    '1',
    '-extfile',
    ext,
  ]);
  return files(dir, name);
}
