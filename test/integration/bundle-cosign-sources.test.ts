import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VerdictError } from '../../src/errors';
import type { RunningVerdict } from '../../src/main';
import { cosign, opaBuild, revisionPolicy } from '../helpers/bundle-fixtures';
import { nextRefusal } from '../helpers/bundle-publish';
import { checkClient, headerValue, httpCheckRequest, startTestVerdict, tempDir } from '../helpers/verdict-harness';

/** A bundle file and the cosign signature that travels with it (null: published unsigned). */
interface Delivery {
  bundle: Buffer;
  signature: Buffer | null;
}

/** Keys and bundles made at test time with the real, pinned opa and cosign. */
interface Material {
  publicKeyFile: string;
  good: Delivery;
  /** Refused cases, each a bundle that would otherwise load: only its signature makes it bad. */
  refused: Record<RefusedCase, Delivery>;
}

const REFUSED_CASES = [
  'signed with another key',
  'unsigned (no signature published)',
  'tampered: one byte flipped after signing',
  // The bytes are a whole valid bundle of their own, so only the signature check can refuse them.
  'tampered: bytes replaced by another valid bundle after signing',
] as const;
type RefusedCase = (typeof REFUSED_CASES)[number];

type SignatureForm = 'detached' | 'sigstore-bundle';

async function makeMaterial(form: SignatureForm): Promise<Material> {
  const dir = tempDir('verdict-cosign-sources-');
  await cosign(['generate-key-pair', '--output-key-prefix', join(dir, 'signer')]);
  await cosign(['generate-key-pair', '--output-key-prefix', join(dir, 'other')]);
  const [good, other, unsigned, flipped, swapped, evil] = await Promise.all(
    ['GOOD', 'OTHER', 'UNSIGNED', 'FLIPPED', 'SWAPPED', 'EVIL'].map((r) => opaBuild({ files: revisionPolicy(r), revision: r })),
  );
  const sign = async (bundlePath: string, key: 'signer' | 'other'): Promise<Buffer> => {
    const out = join(dir, `${key}-${createHash('sha256').update(bundlePath).digest('hex').slice(0, 8)}.sig`);
    const args = ['sign-blob', '--key', join(dir, `${key}.key`), '--tlog-upload=false', '--yes'];
    if (form === 'detached') args.push('--output-signature', out);
    else args.push('--new-bundle-format', '--bundle', out);
    await cosign([...args, bundlePath as string]);
    return readFileSync(out);
  };
  const read = (p: string | undefined): Buffer => readFileSync(p as string);
  const flippedBytes = Buffer.from(read(flipped));
  const at = Math.floor(flippedBytes.length / 2);
  flippedBytes[at] = (flippedBytes[at] as number) ^ 0x01;
  const swappedSignature = await sign(swapped as string, 'signer');
  return {
    publicKeyFile: join(dir, 'signer.pub'),
    good: { bundle: read(good), signature: await sign(good as string, 'signer') },
    refused: {
      'signed with another key': { bundle: read(other), signature: await sign(other as string, 'other') },
      'unsigned (no signature published)': { bundle: read(unsigned), signature: null },
      'tampered: one byte flipped after signing': { bundle: flippedBytes, signature: await sign(flipped as string, 'signer') },
      'tampered: bytes replaced by another valid bundle after signing': { bundle: read(evil), signature: swappedSignature },
    },
  };
}

async function servingRevision(verdict: RunningVerdict): Promise<string | undefined> {
  const client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
  try {
    return headerValue((await client.check(httpCheckRequest({ path: '/x' }))).okResponse?.headers, 'x-bundle-rev');
  } finally {
    client.close();
  }
}

async function scrape(verdict: RunningVerdict): Promise<string> {
  return (await fetch(`http://127.0.0.1:${verdict.httpPort}/metrics`)).text();
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Asserts, through the real /metrics scrape and a real Check, that the good bundle is the one serving. */
async function expectGoodServing(verdict: RunningVerdict, good: Delivery, form: SignatureForm): Promise<void> {
  expect(await servingRevision(verdict)).toBe('GOOD');
  expect(verdict.policy.current?.bundle.signer?.cosign?.form).toBe(form);
  expect(await scrape(verdict)).toMatch(new RegExp(`verdict_bundle_info\\{[^}]*sha256="${sha256(good.bundle)}"[^}]*\\} 1`));
}

function rejectedCount(metrics: string, code: string): number {
  const m = new RegExp(`verdict_bundle_loads_total\\{outcome="rejected",reason="${code}"\\} (\\d+)`).exec(metrics);
  return m === null ? 0 : Number(m[1]);
}

/** Each refused case in turn: refused with ERR_BUNDLE_SIGNATURE, counted once, and the good bundle keeps answering. */
function refusalCases(
  ctx: () => { verdict: RunningVerdict; material: Material; publish: (d: Delivery) => void; form: SignatureForm },
): void {
  // Run in order against one server: each refusal must add exactly one to the count.
  it.each(REFUSED_CASES.map((name, index) => ({ name, index })))('$name → ERR_BUNDLE_SIGNATURE', async ({ name, index }) => {
    const { verdict, material, publish, form } = ctx();
    const refused = nextRefusal(verdict.policy);
    publish(material.refused[name]);
    expect((await refused).code).toBe('ERR_BUNDLE_SIGNATURE');
    expect(rejectedCount(await scrape(verdict), 'ERR_BUNDLE_SIGNATURE')).toBe(index + 1);
    await expectGoodServing(verdict, material.good, form);
  });
}

describe('cosign-signed bundle from a file source (real cosign sign-blob, detached signature)', () => {
  let material: Material;
  let verdict: RunningVerdict;
  let live: string;
  let signaturePath: string;

  /**
   * The signature lives in its own directory (bundles.source.signaturePath) and is placed before the bundle is
   * renamed over the live path, so one watched rename delivers a consistent pair.
   */
  const publish = (d: Delivery): void => {
    if (d.signature === null) rmSync(signaturePath, { force: true });
    else atomicWrite(signaturePath, d.signature);
    atomicWrite(live, d.bundle);
  };

  beforeAll(async () => {
    material = await makeMaterial('detached');
    live = join(tempDir('verdict-cosign-file-'), 'bundle.tar.gz');
    signaturePath = join(tempDir('verdict-cosign-file-sig-'), 'bundle.tar.gz.sig');
    publish(material.good);
    verdict = await startTestVerdict([
      'bundles.source.type=file',
      `bundles.source.path=${live}`,
      `bundles.source.signaturePath=${signaturePath}`,
      'bundles.source.debounceMs=50',
      `bundles.cosign.publicKeyFile=${material.publicKeyFile}`,
    ]);
  });

  afterAll(async () => {
    await verdict?.stop();
  });

  it('activates the signed bundle: Check answers by it, its sha256 is in /metrics', async () => {
    await expectGoodServing(verdict, material.good, 'detached');
  });

  describe('refuses, keeping the good bundle', () => {
    refusalCases(() => ({ verdict, material, publish, form: 'detached' }));
  });
});

/**
 * A loopback bundle service with the signature at `<url>.sig`. A new delivery is installed only when the
 * bundle itself is requested, so the signature GET that follows always belongs to the bundle just served.
 */
class SignedBundleService {
  readonly server: Server;
  private current: Delivery = { bundle: Buffer.alloc(0), signature: null };
  private next: Delivery | null = null;
  /** Set: the signature URL answers this status (an outage of the signature store, not a missing signature). */
  signatureStatus: number | null = null;

  constructor() {
    this.server = createServer((req, res) => {
      if (req.url === '/bundles/authz.tar.gz') {
        if (this.next !== null) [this.current, this.next] = [this.next, null];
        const etag = `"${sha256(this.current.bundle).slice(0, 16)}"`;
        if (req.headers['if-none-match'] === etag) res.writeHead(304).end();
        else res.writeHead(200, { etag, 'content-type': 'application/gzip' }).end(this.current.bundle);
        return;
      }
      if (req.url === '/bundles/authz.tar.gz.sig' && this.signatureStatus !== null) {
        res.writeHead(this.signatureStatus).end();
        return;
      }
      if (req.url === '/bundles/authz.tar.gz.sig' && this.current.signature !== null) {
        res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(this.current.signature);
        return;
      }
      res.writeHead(404).end();
    });
  }

  publish(d: Delivery): void {
    this.next = d;
  }

  async listen(): Promise<string> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/bundles/authz.tar.gz`;
  }
}

describe('cosign-signed bundle from an HTTP source (real cosign sign-blob, sigstore bundle)', () => {
  const service = new SignedBundleService();
  let material: Material;
  let verdict: RunningVerdict;

  beforeAll(async () => {
    material = await makeMaterial('sigstore-bundle');
    service.publish(material.good);
    const url = await service.listen();
    verdict = await startTestVerdict([
      'bundles.source.type=http',
      `bundles.source.url=${url}`,
      'bundles.source.minDelayMs=10',
      'bundles.source.maxDelayMs=30',
      `bundles.cosign.publicKeyFile=${material.publicKeyFile}`,
    ]);
  });

  afterAll(async () => {
    await verdict?.stop();
    service.server.close();
  });

  it('activates the signed bundle: Check answers by it, its sha256 is in /metrics', async () => {
    await expectGoodServing(verdict, material.good, 'sigstore-bundle');
  });

  describe('refuses, keeping the good bundle', () => {
    refusalCases(() => ({ verdict, material, publish: (d) => service.publish(d), form: 'sigstore-bundle' }));
  });

  // Only a 404 means "unsigned"; any other failure to fetch the signature is a source error (retried), and
  // nothing is activated either way.
  it('a signature URL answering 503 is ERR_BUNDLE_SOURCE, not a refusal; the good bundle keeps answering', async () => {
    const loader = verdict.bundles;
    if (loader === null) throw new Error('an http source must start a bundle loader');
    const failed = once(loader, 'source-error') as Promise<[VerdictError]>;
    service.signatureStatus = 503;
    service.publish(material.refused['signed with another key']);
    const [err] = await failed;
    expect(err.code).toBe('ERR_BUNDLE_SOURCE');
    expect(rejectedCount(await scrape(verdict), 'ERR_BUNDLE_SIGNATURE')).toBe(REFUSED_CASES.length);
    await expectGoodServing(verdict, material.good, 'sigstore-bundle');
  });
});

function atomicWrite(path: string, bytes: Buffer): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, path);
}
