import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { pack } from 'tar-stream';

const gzipAsync = promisify(gzip);

/**
 * Writes files into an OPA-format bundle (.tar.gz) the way `opa build` lays them out: entries named
 * "/<path>", regular files only, fixed mtime and mode so the same files give the same bytes (and sha256).
 */
export async function writeBundle(files: ReadonlyMap<string, Buffer>): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    p.on('end', resolve);
    p.on('error', reject);
  });
  for (const [name, data] of files) {
    await new Promise<void>((resolve, reject) =>
      p.entry({ name: `/${name}`, size: data.length, mode: 0o600, mtime: new Date(0), type: 'file' }, data, (err) =>
        err ? reject(err) : resolve(),
      ),
    );
  }
  p.finalize();
  await done;
  return gzipAsync(Buffer.concat(chunks));
}
