import { DEFAULT_LOAD_TIMEOUT_MS } from './bundle';
import { copyInSlices, runInBundleWorker } from './bundle-worker';

export type FileHashAlgorithm = 'sha256' | 'sha384' | 'sha512';

export interface FileToHash {
  name: string;
  data: Buffer;
  algorithm: FileHashAlgorithm;
  /** data.json / .manifest: hashed in OPA's canonical JSON form. */
  structured: boolean;
}

/**
 * Hashes large bundle files in the bundle worker, so that a 50 MB data.json (whose canonical form needs a
 * full parse) never blocks a Check. The bytes are copied into one transferable buffer per file, a slice per
 * event-loop turn (the bundle keeps its own). The deadline covers the hashing only, not the copy: the copy is
 * bounded by the file size. A file that is not JSON where JSON is due is ERR_BUNDLE_INVALID.
 */
export async function hashFilesOffLoop(files: readonly FileToHash[], timeoutMs = DEFAULT_LOAD_TIMEOUT_MS): Promise<string[]> {
  const data: Uint8Array[] = [];
  for (const f of files) data.push(await copyInSlices(f.data));
  const total = data.reduce((n, d) => n + d.length, 0);
  return runInBundleWorker<string[]>('hash', {
    payload: { files: files.map((f, i) => ({ name: f.name, algorithm: f.algorithm, structured: f.structured, data: data[i] })) },
    transfer: data.map((d) => d.buffer as ArrayBuffer),
    timeoutMs,
    // The canonical text of a structured file is about its size again, as a string (2 bytes a char).
    heapMb: Math.max(256, Math.ceil((6 * total) / 2 ** 20)),
    codes: ['ERR_BUNDLE_INVALID'],
    what: 'hashing bundle files',
  });
}
