import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { OCI_MEDIA_TYPES } from '../../src/policy/bundle-source-oci';
import { pinnedTool } from './bundle-fixtures';
import { tempDir } from './verdict-harness';

export interface Registry {
  url: string;
  /**
   * Where the registry's filesystem storage keeps a blob's bytes. Rewriting that file is how a test makes a
   * registry serve content that does not match its digest (a corrupted or tampered storage backend): the
   * real registry checks digests when a blob is pushed, never when it is served.
   */
  blobPath(digest: string): string;
  stop(): Promise<void>;
}

/** The real CNCF distribution registry (built by scripts/setup-tools.sh registry), on a loopback port. */
export async function startRegistry(): Promise<Registry> {
  const bin = pinnedTool('registry');
  const dir = tempDir('verdict-registry-');
  const port = await freePort();
  const config = join(dir, 'config.yml');
  writeFileSync(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: error',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${join(dir, 'data')}`,
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '',
    ].join('\n'),
  );
  const child = spawn(bin, ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  const url = `http://127.0.0.1:${port}`;
  await waitReady(url, child, () => stderr);
  return {
    url,
    blobPath: (digest) => {
      const hex = digest.replace(/^sha256:/, '');
      return join(dir, 'data', 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
    },
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

/** Polls GET /v2/ until the registry answers, with a deadline; fails with its stderr if it exits. */
async function waitReady(url: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`registry exited (${child.exitCode}): ${stderr()}`);
    const ok = await fetch(`${url}/v2/`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`registry not ready at ${url}: ${stderr()}`);
    await new Promise((r) => setTimeout(r, 50)); // readiness poll interval, not a timing assumption
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** `--set` lines that make verdict follow `repository:latest` of a registry, polled every minDelayMs–maxDelayMs. */
export function ociSourceSets(registryUrl: string, repository: string, minDelayMs: number, maxDelayMs: number): string[] {
  return [
    'bundles.source.type=oci',
    `bundles.source.registry=${registryUrl}`,
    `bundles.source.repository=${repository}`,
    'bundles.source.reference=latest',
    `bundles.source.minDelayMs=${minDelayMs}`,
    `bundles.source.maxDelayMs=${maxDelayMs}`,
  ];
}

export const digestOf = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Pushes blobs (monolithic upload: POST then PUT ?digest=, distribution spec "Pushing blobs"). */
export async function pushBlob(registry: string, repo: string, data: Buffer): Promise<string> {
  const digest = digestOf(data);
  const start = await fetch(`${registry}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  if (start.status !== 202) throw new Error(`blob upload start: HTTP ${start.status}`);
  const location = new URL(start.headers.get('location') ?? '', registry);
  location.searchParams.set('digest', digest);
  const put = await fetch(location, { method: 'PUT', body: data, headers: { 'content-type': 'application/octet-stream' } });
  if (put.status !== 201) throw new Error(`blob upload: HTTP ${put.status}`);
  return digest;
}

/** Pushes an OPA bundle as OPA's OCI layout (config + one tar+gzip layer), plus extra layers; returns the manifest digest. */
export async function pushBundle(
  registry: string,
  repo: string,
  tag: string,
  bundle: Buffer,
  extraLayers: { mediaType: string; data: Buffer }[] = [],
): Promise<string> {
  const layers = [{ mediaType: OCI_MEDIA_TYPES.bundleLayer, data: bundle }, ...extraLayers];
  const descriptors = await Promise.all(
    layers.map(async (l) => ({ mediaType: l.mediaType, digest: await pushBlob(registry, repo, l.data), size: l.data.length })),
  );
  return pushManifest(registry, repo, tag, descriptors);
}

/** Tags an image manifest whose layers are blobs already in the repository; returns the manifest digest. */
export async function pushManifest(
  registry: string,
  repo: string,
  tag: string,
  layers: { mediaType: string; digest: string; size: number }[],
): Promise<string> {
  const config = Buffer.from('{}');
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MEDIA_TYPES.manifest,
      config: { mediaType: OCI_MEDIA_TYPES.config, digest: await pushBlob(registry, repo, config), size: config.length },
      layers,
    }),
  );
  const res = await fetch(`${registry}/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    body: manifest,
    headers: { 'content-type': OCI_MEDIA_TYPES.manifest },
  });
  if (res.status !== 201) throw new Error(`manifest push: HTTP ${res.status} ${await res.text()}`);
  return digestOf(manifest);
}
