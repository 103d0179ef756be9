import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hashFilesOffLoop } from '../../../src/policy/bundle-hash-off-loop';
import { hashStructuredJSON } from '../../../src/policy/bundle-json-hash';

/** JSON of about `bytes` bytes; its length is not a multiple of the 1 MiB copy slice. */
function jsonOf(bytes: number): Buffer {
  const items: string[] = [];
  for (let size = 0, i = 0; size < bytes; i++) {
    const s = `{"z":${i},"a":"v${i * 7919}","m":[${i % 10},1.50]}`;
    items.push(s);
    size += s.length + 1;
  }
  return Buffer.from(`{"items":[${items.join(',')}],"b":true}`);
}

describe('hashFilesOffLoop (files handed to the worker a slice per event-loop turn)', () => {
  const cases = [
    { name: 'structured data.json over several slices', data: jsonOf(3.5 * 2 ** 20 + 123), structured: true },
    { name: 'raw bytes over several slices', data: Buffer.from(jsonOf(2 * 2 ** 20 + 7).toString('base64')), structured: false },
    { name: 'one file smaller than a slice', data: jsonOf(300 * 1024), structured: true },
  ];

  it('hashes every file as the on-loop code does, and leaves the bundle bytes intact', async () => {
    const before = cases.map((c) => Buffer.from(c.data));
    const hashes = await hashFilesOffLoop(
      cases.map((c) => ({ name: c.name, data: c.data, algorithm: 'sha256', structured: c.structured })),
    );
    cases.forEach((c, i) => {
      const expected = c.structured ? hashStructuredJSON(c.data, 'sha256') : createHash('sha256').update(c.data).digest('hex');
      expect(hashes[i], c.name).toBe(expected);
      expect(c.data.equals(before[i] as Buffer), `${c.name}: bytes unchanged`).toBe(true);
    });
  });

  it('refuses a file that is not JSON with ERR_BUNDLE_INVALID', async () => {
    const data = Buffer.concat([jsonOf(1.5 * 2 ** 20), Buffer.from('trailing')]);
    await expect(hashFilesOffLoop([{ name: 'data.json', data, algorithm: 'sha256', structured: true }])).rejects.toMatchObject({
      code: 'ERR_BUNDLE_INVALID',
    });
  });
});
