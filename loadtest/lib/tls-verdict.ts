import { EventEmitter } from 'node:events';
import { KeyObject, type X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCA, issueX509SVID } from '../../test/helpers/svid-authority';
import { loadConfig } from '../../src/config/load-config';
import { makeTrustBundle, type TrustBundle } from '../../src/identity/trust-bundle';
import type { OwnX509SVID } from '../../src/identity/workload-api-client';
import { startVerdict } from '../../src/main';
import { SPIFFEServerTLS, type ServerSVIDSource } from '../../src/server/spiffe-server-tls';
import { createLogger } from '../../src/telemetry/logger';

/**
 * verdict for the mTLS bench: one process serving Check either in plaintext or over mTLS with a run-time
 * minted SVID and a caller allow-list (`node tls-verdict.js mtls|plain [--set k=v ...]`). The SVID source is
 * in-process (a SPIRE agent would only add its own CPU to the box). Prints {"port", "dir"} once serving; dir
 * holds ca.pem, client.pem and client-key.pem for the load client.
 */
const TD = 'example.org';

class FixedSVIDSource extends EventEmitter implements ServerSVIDSource {
  constructor(
    readonly currentX509SVID: OwnX509SVID,
    private readonly cas: X509Certificate[],
  ) {
    super();
  }
  bundleForTrustDomain(td: string): TrustBundle | undefined {
    return td === TD ? makeTrustBundle(TD, this.cas, new Map()) : undefined;
  }
  allX509Authorities(): X509Certificate[] {
    return this.cas;
  }
}

async function main(): Promise<void> {
  const [mode = 'plain', ...rest] = process.argv.slice(2);
  const overrides = rest.filter((a) => a !== '--set');
  const dir = mkdtempSync(join(tmpdir(), 'verdict-bench-tls-'));
  const ca = await createCA('bench root');
  const server = await issueX509SVID(ca, `spiffe://${TD}/ns/auth/sa/verdict`);
  const client = await issueX509SVID(ca, `spiffe://${TD}/ns/mesh/sa/envoy`);
  writeFileSync(join(dir, 'ca.pem'), ca.pem);
  writeFileSync(join(dir, 'client.pem'), client.pem);
  writeFileSync(join(dir, 'client-key.pem'), KeyObject.from(client.keys.privateKey).export({ format: 'pem', type: 'pkcs8' }) as string);
  const source = new FixedSVIDSource(
    { spiffeID: `spiffe://${TD}/ns/auth/sa/verdict`, certificates: [server.cert], privateKey: KeyObject.from(server.keys.privateKey) },
    [ca.cert],
  );
  const tls = mode === 'mtls' ? new SPIFFEServerTLS({ client: source, allowedCallers: [`spiffe://${TD}/ns/mesh/*`] }) : undefined;
  const config = loadConfig({ overrides: ['server.grpc.port=0', 'server.http.port=null', 'log.level=silent', ...overrides] });
  const verdict = await startVerdict(config, { logger: createLogger('silent'), ...(tls ? { tls } : {}) });
  process.stdout.write(`${JSON.stringify({ port: verdict.grpcPort, dir })}\n`);
  process.on('SIGTERM', () => void verdict.stop().then(() => process.exit(0)));
}

void main();
