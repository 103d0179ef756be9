import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import type { ErrorCode } from '../../src/errors';
import { readBundle } from '../../src/policy/bundle-reader';
import { SIGNATURES_FILE, signOPABundle } from '../../src/policy/bundle-signature-opa';
import { assemble, LOOP_FOREVER, returns } from '../unit/policy/engine-wasm-modules';
import { makeKeyPair, opaBuild, revisionPolicy, type KeyPair } from './bundle-fixtures';
import { tarBytes, tarGz, type TarEntry } from './tar-writer';

/** Bounds the hostile suite runs verdict with (small, so bombs and floods stay cheap to generate). */
export const HOSTILE_LIMITS = {
  maxCompressedBytes: 8 * 1024 * 1024,
  maxUncompressedBytes: 24 * 1024 * 1024,
  maxFileBytes: 20 * 1024 * 1024,
  maxFiles: 64,
  maxPathDepth: 8,
};

export interface HostileCase {
  name: string;
  bytes: Buffer;
  code: ErrorCode;
}

/** A signing key and a good bundle (real `opa build`), re-signable with any files and any kid. */
export class BundleForge {
  readonly key: KeyPair = makeKeyPair('ec');
  private readonly privateKey = createPrivateKey(readFileSync(this.key.privatePath));

  private constructor(readonly goodFiles: ReadonlyMap<string, Buffer>) {}

  static async create(revision = 'GOOD'): Promise<BundleForge> {
    const path = await opaBuild({ files: revisionPolicy(revision), revision });
    const files = (await readBundle(readFileSync(path), path)).files;
    return new BundleForge(files);
  }

  /** The files plus a `.signatures.json` over them (OPA format, ES256, iat 1). */
  sign(files: ReadonlyMap<string, Buffer>, kid = 'main'): Map<string, Buffer> {
    const out = new Map([...files].filter(([n]) => n !== SIGNATURES_FILE));
    out.set(SIGNATURES_FILE, signOPABundle(out, { privateKey: this.privateKey, algorithm: 'ES256', keyId: kid, issuedAtSec: 1 }));
    return out;
  }

  good(): Buffer {
    return pack(this.sign(this.goodFiles));
  }

  /** The config keys that make verdict trust this forge's signatures (the JWT's kid picks the key). */
  trustSets(): string[] {
    return [`bundles.opaSigning.keys.main.keyFile=${this.key.publicPath}`, 'bundles.opaSigning.keys.main.algorithm=ES256'];
  }

  /** Every class of hostile bundle a source can deliver, each with the code it must be refused with. */
  hostile(): HostileCase[] {
    const good = this.sign(this.goodFiles);
    const entries = toEntries(good);
    const manifest = entries.find((e) => e.name === '/.manifest') as TarEntry;
    const replaced = (name: string, body: Buffer | string): Map<string, Buffer> => new Map([...good, [name, Buffer.from(body)]]);
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    const engineWasm = assemble({ evaluate: returns(0, 4), data: 'true', start: LOOP_FOREVER });
    const wasmManifest = JSON.stringify({ revision: 'LOOP', metadata: { verdict: { engine: 'wasm' } } });
    const rootsManifest = JSON.stringify({ ...JSON.parse((good.get('.manifest') as Buffer).toString()), roots: ['envoy'] });
    return [
      {
        name: 'entry declares more bytes than it holds',
        bytes: tarGz([...entries, { name: '/x', body: 'ab', declaredSize: 9000 }], { end: false }),
        code: 'ERR_BUNDLE_INVALID',
      },
      { name: 'truncated gzip stream', bytes: pack(good).subarray(0, 200), code: 'ERR_BUNDLE_INVALID' },
      // Three files of 10 MiB of zeros (each under the per-file bound) inflate past the 24 MiB total bound.
      {
        name: 'gzip bomb',
        bytes: gzipSync(tarBytes([manifest, ...[1, 2, 3].map((i) => ({ name: `/bomb${i}`, body: Buffer.alloc(10 * 1024 * 1024) }))])),
        code: 'ERR_BUNDLE_TOO_LARGE',
      },
      { name: 'parent traversal', bytes: tarGz([...entries, { name: '/../../etc/cron.d/x', body: 'x' }]), code: 'ERR_BUNDLE_UNSAFE_PATH' },
      { name: 'directory traversal', bytes: tarGz([...entries, { name: '../up/', type: 'directory' }]), code: 'ERR_BUNDLE_UNSAFE_PATH' },
      {
        name: 'symlink',
        bytes: tarGz([...entries, { name: '/link', type: 'symlink', linkname: '/etc/shadow' }]),
        code: 'ERR_BUNDLE_UNSAFE_PATH',
      },
      {
        name: 'hard link',
        bytes: tarGz([...entries, { name: '/hard', type: 'link', linkname: '/.manifest' }]),
        code: 'ERR_BUNDLE_UNSAFE_PATH',
      },
      { name: 'character device entry', bytes: tarGz([...entries, { name: '/zero', type: 'char' }]), code: 'ERR_BUNDLE_UNSAFE_PATH' },
      { name: 'FIFO entry', bytes: tarGz([...entries, { name: '/fifo', type: 'fifo' }]), code: 'ERR_BUNDLE_UNSAFE_PATH' },
      { name: 'duplicate name', bytes: tarGz([...entries, manifest]), code: 'ERR_BUNDLE_INVALID' },
      {
        name: 'directory flood',
        bytes: tarGz([...entries, ...Array.from({ length: 100 }, (_, i) => ({ name: `/d${i}/`, type: 'directory' as const }))]),
        code: 'ERR_BUNDLE_TOO_LARGE',
      },
      {
        name: 'path too deep',
        bytes: tarGz([...entries, { name: `/${'a/'.repeat(12)}data.json`, body: '{}' }]),
        code: 'ERR_BUNDLE_TOO_LARGE',
      },
      {
        name: 'huge data.json (tampered)',
        bytes: pack(replaced('data.json', `{"blob":"${'x'.repeat(4 * 1024 * 1024)}"}`)),
        code: 'ERR_BUNDLE_SIGNATURE',
      },
      { name: 'deeply nested data.json', bytes: pack(replaced('data.json', deep)), code: 'ERR_BUNDLE_INVALID' },
      {
        name: 'data outside the manifest roots (validly signed)',
        bytes: pack(
          this.sign(new Map([...good, ['.manifest', Buffer.from(rootsManifest)], ['data.json', Buffer.from('{"elsewhere":{"x":1}}')]])),
        ),
        code: 'ERR_BUNDLE_ROOTS',
      },
      ...['__proto__', 'constructor', 'toString'].map((kid) => ({
        name: `kid "${kid}"`,
        bytes: pack(this.sign(this.goodFiles, kid)),
        code: 'ERR_BUNDLE_SIGNATURE' as const,
      })),
      {
        name: 'custom engine whose start function loops (validly signed)',
        bytes: pack(
          this.sign(
            new Map([
              ['.manifest', Buffer.from(wasmManifest)],
              ['engine.wasm', engineWasm],
            ]),
          ),
        ),
        code: 'ERR_BUNDLE_LOAD_TIMEOUT',
      },
    ];
  }
}

export function toEntries(files: ReadonlyMap<string, Buffer>): TarEntry[] {
  return [...files].map(([name, body]) => ({ name: `/${name}`, body }));
}

export function pack(files: ReadonlyMap<string, Buffer>): Buffer {
  return tarGz(toEntries(files));
}
