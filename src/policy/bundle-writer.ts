import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { pack } from 'tar-stream';

const gzipAsync = promisify(gzip);

/** RFC 1952 §2.3.1: MTIME is bytes 4–7, OS byte 9; 255 = "unknown" (what Go's gzip writes, so `opa build` too). */
const GZIP_MTIME_OFFSET = 4;
const GZIP_OS_OFFSET = 9;
const GZIP_OS_UNKNOWN = 0xff;

/**
 * Writes files into an OPA-format bundle (.tar.gz) the way `opa build` lays them out: entries named
 * "/<path>" relative to the bundle root, regular files only. Reproducible: entries sorted by path, fixed
 * mtime, mode, uid/gid and no owner names in tar; a gzip header with no mtime and no OS of the builder.
 * The same files give the same bytes (and sha256) on any machine at any time.
 */
export async function writeBundle(files: ReadonlyMap<string, Buffer>): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    p.on('end', resolve);
    p.on('error', reject);
  });
  for (const name of [...files.keys()].sort()) {
    const data = files.get(name) as Buffer;
    const header = { name: `/${name}`, size: data.length, mode: 0o600, mtime: new Date(0), type: 'file' as const };
    await new Promise<void>((resolve, reject) =>
      p.entry({ ...header, uid: 0, gid: 0, uname: '', gname: '' }, data, (err) => (err ? reject(err) : resolve())),
    );
  }
  p.finalize();
  await done;
  return reproducibleGzip(Buffer.concat(chunks));
}

async function reproducibleGzip(data: Buffer): Promise<Buffer> {
  // A fixed level fixes the XFL byte; the deflate stream is then a function of the input and zlib's version.
  const out = await gzipAsync(data, { level: 9 });
  out.writeUInt32LE(0, GZIP_MTIME_OFFSET);
  out[GZIP_OS_OFFSET] = GZIP_OS_UNKNOWN;
  return out;
}
