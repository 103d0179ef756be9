import * as grpc from '@grpc/grpc-js';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/clock';
import type { VerdictError } from '../../../src/errors';
import { WorkloadAPIClient, type WorkloadAPIClientOptions } from '../../../src/identity/workload-api-client';
import { loadWorkloadAPIClientConstructor } from '../../../src/identity/workload-api-protos';
import { createCA, createJWTAuthority, issueX509SVID, type JWTAuthority, type TestCA, type TestSVID } from '../../helpers/svid-authority';
import { recordingLogger, type RecordedLine } from '../../helpers/recording-logger';
import { waitFor } from '../../helpers/spire-harness';
import { tempDir } from '../../helpers/verdict-harness';

/**
 * Workload API responses a broken or compromised agent could send and a real SPIRE agent cannot be made to:
 * trust-domain keys that are not trust domains or name one twice, a bundle that does not parse beside one
 * that rotates, thousands of trust domains or certificates, a message over the receive bound, a flood of
 * updates, an own SVID whose key does not load or is not its certificate's. So a minimal SpiffeWorkloadAPI
 * server on a Unix socket sends them (a silent agent is tested with real SPIRE in test/integration/spire.test.ts).
 */
let ca: TestCA;
let ca2: TestCA;
let jwtKey: JWTAuthority;
const servers: grpc.Server[] = [];
const clients: WorkloadAPIClient[] = [];

beforeAll(async () => {
  [ca, ca2, jwtKey] = await Promise.all([createCA('example.org'), createCA('example.org 2'), createJWTAuthority('k1')]);
});

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  for (const s of servers.splice(0)) s.forceShutdown();
});

type Push = (msg: object) => void;
interface FakeAgent {
  pushX509: Push;
  pushJWT: Push;
  pushSVID: Push;
  /** Calls opened per method. */
  calls: Record<string, number>;
}

async function fakeAgent(socket: string): Promise<FakeAgent> {
  const server = new grpc.Server({ 'grpc.max_send_message_length': 64 * 1024 * 1024 });
  const calls: Record<string, number> = {};
  const push: Record<string, Push> = {};
  const stream = (method: string) => (call: grpc.ServerWritableStream<object, object>) => {
    calls[method] = (calls[method] ?? 0) + 1;
    push[method] = (msg) => call.write(msg);
  };
  server.addService(loadWorkloadAPIClientConstructor().service, {
    FetchX509Bundles: stream('FetchX509Bundles'),
    FetchJWTBundles: stream('FetchJWTBundles'),
    FetchX509SVID: stream('FetchX509SVID'),
  });
  await new Promise<void>((res, rej) =>
    server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())),
  );
  servers.push(server);
  const to =
    (method: string): Push =>
    (msg) =>
      push[method]?.(msg);
  return { pushX509: to('FetchX509Bundles'), pushJWT: to('FetchJWTBundles'), pushSVID: to('FetchX509SVID'), calls };
}

async function setup(
  options: Partial<WorkloadAPIClientOptions> = {},
): Promise<{ agent: FakeAgent; c: WorkloadAPIClient; lines: RecordedLine[] }> {
  const socket = join(tempDir(), 'agent.sock');
  const agent = await fakeAgent(socket);
  const { logger, lines } = recordingLogger();
  const c = new WorkloadAPIClient({
    socket: `unix://${socket}`,
    clock: systemClock,
    logger,
    reconnectInitialMs: 50,
    reconnectMaxMs: 200,
    bundleStalenessMs: 60_000,
    fetchX509SVID: false,
    minUpdateIntervalMs: 0,
    ...options,
  });
  clients.push(c);
  c.start();
  const streams = options.fetchX509SVID ? 3 : 2;
  await waitFor('the streams open at the agent', () => Object.values(agent.calls).reduce((a, b) => a + b, 0) === streams);
  return { agent, c, lines };
}

const jwks = (...keys: object[]): Buffer => Buffer.from(JSON.stringify({ keys }));
const next = <T>(c: WorkloadAPIClient, event: string): Promise<T> =>
  new Promise((res) => c.once(event, (...args: unknown[]) => res(args as T)));

/** Ready on a first good update: example.org with `ca` and the JWT key. */
async function ready(agent: FakeAgent, c: WorkloadAPIClient): Promise<void> {
  const isReady = next(c, 'ready');
  agent.pushX509({ bundles: { 'example.org': ca.cert.raw } });
  agent.pushJWT({ bundles: { 'example.org': jwks(jwtKey.publicJWK) } });
  await isReady;
}

describe('bundle maps: each trust domain on its own', () => {
  it.each([
    ['uppercase', 'Example.ORG'],
    ['a space', 'exa mple.org'],
    ['empty', ''],
    ['a port', 'example.org:443'],
    ['300 characters', 'a'.repeat(300)],
  ])('a key that is not a trust domain (%s) is refused with ERR_SPIFFE_ID_INVALID; the other trust domains apply', async (_n, key) => {
    const { agent, c } = await setup();
    await ready(agent, c);
    const refused = next<[string, VerdictError]>(c, 'refused');
    const changed = next(c, 'bundles');
    agent.pushX509({ bundles: { 'example.org': Buffer.concat([ca.cert.raw, ca2.cert.raw]), [key]: ca.cert.raw } });
    const [stream, err] = await refused;
    await changed;
    expect([stream, err.code]).toEqual(['x509Bundles', 'ERR_SPIFFE_ID_INVALID']);
    expect(err.message.length).toBeLessThan(400);
    expect(c.bundleForTrustDomain('example.org')?.x509Authorities).toHaveLength(2);
  });

  it('a trust domain named twice (example.org and spiffe://example.org) keeps its previous bundle', async () => {
    const { agent, c } = await setup();
    await ready(agent, c);
    const before = c.bundleForTrustDomain('example.org');
    const refused = next<[string, VerdictError]>(c, 'refused');
    agent.pushX509({
      bundles: {
        'example.org': ca2.cert.raw,
        'spiffe://example.org': Buffer.concat([ca.cert.raw, ca2.cert.raw]),
        'other.org': ca.cert.raw,
      },
    });
    const [, err] = await refused;
    expect(err.code).toBe('ERR_WORKLOAD_API');
    expect(err.message).toContain('named twice');
    expect(c.bundleForTrustDomain('example.org')).toBe(before);
    expect(c.bundleForTrustDomain('other.org')?.x509Authorities).toHaveLength(1);
  });

  it('a federated bundle whose DER does not parse keeps its previous bundle while the own trust domain rotates', async () => {
    const { agent, c } = await setup();
    const isReady = next(c, 'ready');
    agent.pushX509({ bundles: { 'example.org': ca.cert.raw, 'partner.org': ca2.cert.raw } });
    agent.pushJWT({ bundles: { 'example.org': jwks(jwtKey.publicJWK) } });
    await isReady;
    const partner = c.bundleForTrustDomain('partner.org');
    const refused = next<[string, VerdictError]>(c, 'refused');
    agent.pushX509({ bundles: { 'example.org': Buffer.concat([ca.cert.raw, ca2.cert.raw]), 'partner.org': ca2.cert.raw.subarray(0, 50) } });
    const [, err] = await refused;
    expect(err.code).toBe('ERR_SVID_MALFORMED');
    expect(c.bundleForTrustDomain('example.org')?.x509Authorities).toHaveLength(2);
    expect(c.bundleForTrustDomain('partner.org')).toBe(partner);
  });

  it('a JWT bundle that is not JSON keeps its previous keys while another trust domain gets new ones', async () => {
    const { agent, c } = await setup();
    await ready(agent, c);
    const before = c.bundleForTrustDomain('example.org');
    const refused = next<[string, VerdictError]>(c, 'refused');
    const other = await createJWTAuthority('k2');
    agent.pushJWT({ bundles: { 'example.org': Buffer.from('{"keys": ['), 'partner.org': jwks(other.publicJWK) } });
    const [stream, err] = await refused;
    expect([stream, err.code]).toEqual(['jwtBundles', 'ERR_BUNDLE_UNAVAILABLE']);
    expect(c.bundleForTrustDomain('example.org')).toBe(before);
    expect(c.bundleForTrustDomain('partner.org')?.jwtAuthorities.has('k2')).toBe(true);
  });

  it('a first update whose every entry is refused is refused whole: verdict does not become ready', async () => {
    const { agent, c } = await setup();
    const refused = next<[string, VerdictError]>(c, 'refused');
    agent.pushX509({ bundles: { 'example.org': Buffer.from([0x30, 0x82, 0xff]) } });
    const [stream] = await refused;
    const jwtApplied = next(c, 'bundles');
    agent.pushJWT({ bundles: { 'example.org': jwks(jwtKey.publicJWK) } });
    await jwtApplied;
    expect(stream).toBe('x509Bundles');
    expect(c.isReady()).toBe(false);
  });

  it('a re-sent, identical trust domain is not parsed again: its certificate objects stay the same', async () => {
    const { agent, c } = await setup();
    await ready(agent, c);
    const [own] = c.allX509Authorities();
    const changed = next(c, 'bundles');
    agent.pushX509({ bundles: { 'example.org': ca.cert.raw, 'partner.org': ca2.cert.raw } });
    await changed;
    expect(c.allX509Authorities()[0]).toBe(own);
  });
});

describe('counts and sizes', () => {
  it('more than 1000 trust domains in one update refuse it whole with ERR_WORKLOAD_API; the bundles stay', async () => {
    const { agent, c } = await setup();
    await ready(agent, c);
    const before = c.bundleForTrustDomain('example.org');
    const refused = next<[string, VerdictError]>(c, 'refused');
    agent.pushX509({ bundles: Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`td${i}.org`, Buffer.alloc(0)])) });
    const [, err] = await refused;
    expect(err.code).toBe('ERR_WORKLOAD_API');
    expect(c.bundleForTrustDomain('example.org')).toBe(before);
    expect(c.bundleForTrustDomain('td0.org')).toBeUndefined();
  });

  it('certificates beyond 1000 in one update are refused: the first trust domains are kept, the one over the bound is not', async () => {
    const { agent, c } = await setup();
    await ready(agent, c);
    const refused = next<[string, VerdictError]>(c, 'refused');
    const many = Buffer.concat(Array.from({ length: 600 }, () => ca2.cert.raw));
    agent.pushX509({ bundles: { 'example.org': ca.cert.raw, 'a.org': many, 'b.org': many } });
    const [, err] = await refused;
    expect(err.code).toBe('ERR_SVID_MALFORMED');
    expect(c.bundleForTrustDomain('a.org')?.x509Authorities).toHaveLength(600);
    expect(c.bundleForTrustDomain('b.org')).toBeUndefined();
    expect(c.allX509Authorities().length).toBeLessThanOrEqual(1000);
  });

  it('a message over 4 MiB takes the stream down with a coded log (RESOURCE_EXHAUSTED); the bundles stay and it reopens', async () => {
    const { agent, c, lines } = await setup();
    await ready(agent, c);
    const before = c.bundleForTrustDomain('example.org');
    agent.pushX509({ bundles: { 'example.org': ca.cert.raw, 'big.org': Buffer.alloc(4 * 1024 * 1024 + 1) } });
    await waitFor('the stream to reopen', () => agent.calls.FetchX509Bundles === 2);
    const down = lines.find((l) => l.msg.includes('stream down'));
    expect(down?.fields).toMatchObject({ stream: 'x509Bundles', code: 'ERR_WORKLOAD_API', why: expect.stringMatching(/^8 /) as string });
    expect(c.bundleForTrustDomain('example.org')).toBe(before);
  });

  it('a flood of 50 different updates within the update interval applies the first and the newest only', async () => {
    const { agent, c } = await setup({ minUpdateIntervalMs: 500 });
    await ready(agent, c);
    let applied = 0;
    c.on('bundles', () => applied++);
    for (let i = 0; i < 50; i++)
      agent.pushX509({ bundles: { 'example.org': i % 2 ? ca.cert.raw : ca2.cert.raw, [`n${i}.org`]: ca.cert.raw } });
    await waitFor('the newest update to apply', () => c.bundleForTrustDomain('n49.org') !== undefined);
    expect(applied).toBeLessThanOrEqual(2);
    expect(c.bundleForTrustDomain('n48.org')).toBeUndefined();
  });
});

/** The SVID's private key as the Workload API carries it (§5.4: PKCS#8 DER). */
const keyDER = async (svid: TestSVID): Promise<Buffer> => Buffer.from(await crypto.subtle.exportKey('pkcs8', svid.keys.privateKey));

describe("verdict's own X509-SVID", () => {
  async function withSVID(): Promise<{ agent: FakeAgent; c: WorkloadAPIClient; good: object }> {
    const { agent, c } = await setup({ fetchX509SVID: true });
    const svid = await issueX509SVID(ca, 'spiffe://example.org/verdict');
    const good = {
      spiffe_id: 'spiffe://example.org/verdict',
      x509_svid: Buffer.from(svid.cert.raw),
      x509_svid_key: await keyDER(svid),
      bundle: ca.cert.raw,
    };
    const rotated = next(c, 'x509svid');
    agent.pushSVID({ svids: [good] });
    await rotated;
    return { agent, c, good };
  }

  it.each([
    [
      'a key that is not PKCS#8 DER',
      (g: Record<string, unknown>) => ({ ...g, x509_svid_key: Buffer.from('not a key') }),
      'ERR_WORKLOAD_API',
    ],
    [
      'the key of another certificate',
      async (g: Record<string, unknown>) => ({ ...g, x509_svid_key: await keyDER(await issueX509SVID(ca, 'spiffe://example.org/other')) }),
      'ERR_WORKLOAD_API',
    ],
    [
      'an RSA key of 1024 bits',
      async (g: Record<string, unknown>) => {
        const weak = await issueX509SVID(ca, 'spiffe://example.org/verdict', { rsaModulusBits: 1024 });
        return { ...g, x509_svid: Buffer.from(weak.cert.raw), x509_svid_key: await keyDER(weak) };
      },
      'ERR_WORKLOAD_API',
    ],
    [
      'a SPIFFE ID that is not one',
      (g: Record<string, unknown>) => ({ ...g, spiffe_id: 'spiffe://Example.org/x' }),
      'ERR_SPIFFE_ID_INVALID',
    ],
  ])('an SVID with %s is refused with its code; the good SVID stays', async (_n, bad, code) => {
    const { agent, c, good } = await withSVID();
    const kept = c.currentX509SVID;
    const refused = next<[string, VerdictError]>(c, 'refused');
    agent.pushSVID({ svids: [await bad(good as Record<string, unknown>)] });
    const [stream, err] = await refused;
    expect([stream, err.code]).toEqual(['x509SVID', code]);
    expect(c.currentX509SVID).toBe(kept);
  });
});
