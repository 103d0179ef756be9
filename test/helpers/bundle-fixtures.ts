import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { pack, type Header } from 'tar-stream';
import { toolPath } from '../../src/cli/tools';
import { packageRoot } from '../../src/package-root';
import { tempDir } from './verdict-harness';

const run = promisify(execFile);

/** Rego whose allow decision names its revision in a header, so a test can tell which bundle decided. */
export function revisionPolicy(revision: string): Record<string, string> {
  return {
    'authz.rego': `package envoy.authz\n\nallow := {"allowed": true, "headers": {"x-bundle-rev": "${revision}"}}\n`,
  };
}

export interface KeyPair {
  privatePath: string;
  publicPath: string;
  publicPEM: string;
}

/** Fresh keys per run, written as PEM (PKCS#8 / SPKI) for the real tools to use. */
export function makeKeyPair(kind: 'rsa' | 'ec'): KeyPair {
  const dir = tempDir('verdict-keys-');
  const { privateKey, publicKey } =
    kind === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const privatePath = join(dir, 'key.pem');
  const publicPath = join(dir, 'key.pub.pem');
  const publicPEM = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  writeFileSync(privatePath, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(publicPath, publicPEM);
  return { privatePath, publicPath, publicPEM };
}

export interface OPABuildOptions {
  files: Record<string, string>;
  revision?: string;
  signingKey?: string;
  signingAlg?: string;
  claimsFile?: string;
  scope?: string;
}

/** Builds a wasm bundle with the real, pinned `opa build` (optionally `--signing-key`), returns its path. */
export async function opaBuild(options: OPABuildOptions): Promise<string> {
  const dir = tempDir('verdict-opa-build-');
  const src = join(dir, 'src');
  mkdirSync(src);
  for (const [name, text] of Object.entries(options.files)) writeFileSync(join(src, name), text);
  const out = join(dir, 'bundle.tar.gz');
  const args = ['build', '-t', 'wasm', '-e', 'envoy/authz/allow', '-b', src, '-o', out];
  if (options.revision) args.push('--revision', options.revision);
  if (options.signingKey) args.push('--signing-key', options.signingKey, '--signing-alg', options.signingAlg ?? 'RS256');
  if (options.claimsFile) args.push('--claims-file', options.claimsFile);
  if (options.scope) args.push('--scope', options.scope);
  await run(toolPath('opa'), args, { maxBuffer: 16 * 1024 * 1024 });
  return out;
}

/** A claims file for `opa build --claims-file` (OPA puts these claims into the signature JWT). */
export function claimsFile(claims: Record<string, unknown>): string {
  const path = join(tempDir('verdict-claims-'), 'claims.json');
  writeFileSync(path, JSON.stringify(claims));
  return path;
}

export async function readBytes(path: string): Promise<Buffer> {
  return readFile(path);
}

/** A raw tarball with arbitrary headers (links, traversal names) that no honest tool writes. */
export async function rawTarGz(entries: { header: Partial<Header> & { name: string }; body?: Buffer }[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => chunks.push(c as Buffer));
  const ended = new Promise<void>((resolve) => p.on('end', resolve));
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => p.entry(e.header, e.body ?? Buffer.alloc(0), (err) => (err ? reject(err) : resolve())));
  }
  p.finalize();
  await ended;
  return gzipSync(Buffer.concat(chunks));
}

/** Runs the real cosign built by scripts/setup-tools.sh; fails loudly when it is missing. */
export async function cosign(args: string[], env: Record<string, string> = {}): Promise<string> {
  const bin = pinnedTool('cosign');
  try {
    const { stdout } = await run(bin, args, { env: { ...process.env, COSIGN_PASSWORD: '', ...env }, maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { code?: string; stderr?: string; message: string };
    throw new Error(`cosign ${args[0]} failed: ${e.stderr ?? e.message}`);
  }
}

/** A tool from .tools/bin that src/cli/tools.ts does not know (test-only tools: cosign, registry). */
export function pinnedTool(name: 'cosign' | 'registry'): string {
  const path = join(packageRoot(), '.tools', 'bin', name);
  if (!existsSync(path)) throw new Error(`${name} is not installed at ${path}: run scripts/setup-tools.sh ${name}`);
  return path;
}
