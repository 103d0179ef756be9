import { DEFAULT_BUNDLE_LIMITS, type PolicyBundle } from '../policy/bundle';
import { MAX_CONFIGURED_FILE_BYTES, readRegularFileBounded } from '../policy/bundle-file-read';
import { readBundle } from '../policy/bundle-reader';

// A bundle or key named on the command line may come from anywhere: each is read as the server reads its
// bundle file (bundle-file-read.ts). A FIFO, device, directory or socket is ERR_BUNDLE_FILE_TYPE, never
// opened for a blocking read or read for ever; past its bound is ERR_BUNDLE_TOO_LARGE; missing or
// unreadable is ERR_BUNDLE_SOURCE.

/** A bundle file's bytes, at most the server's default bound (bundles.limits.maxCompressedBytes). */
export function readBundleBytes(path: string): Promise<Buffer> {
  return readRegularFileBounded(path, DEFAULT_BUNDLE_LIMITS.maxCompressedBytes, 'bundle');
}

/** A bundle file, unpacked with the default bundle limits. */
export async function readBundleFile(path: string): Promise<PolicyBundle> {
  return readBundle(await readBundleBytes(path), path);
}

/** A PEM key file as text, at most MAX_CONFIGURED_FILE_BYTES (1 MiB, as a key the config names; a key is a few KiB). */
export async function readKeyFile(path: string): Promise<string> {
  return (await readRegularFileBounded(path, MAX_CONFIGURED_FILE_BYTES, 'key')).toString('utf8');
}
