import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { StagedBundle, stagingFor } from '../../../src/policy/bundle-staged';
import { tempDir } from '../../helpers/verdict-harness';

const MiB = 2 ** 20;
const staging = stagingFor();

/**
 * External memory V8 accounts to this (the event loop's) isolate: what drives its collections. A worker's
 * buffers are its own; a transferred chunk leaves it (Node's `arrayBuffers` would still count a chunk the
 * event loop allocated, whichever thread holds it now, so it is not the figure here).
 */
const loopBuffers = (): number => process.memoryUsage().external;

async function* chunksOf(data: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let off = 0; off < data.length; off += size) yield data.subarray(off, off + size);
}

describe('StagedBundle: the bundle file lives in a bundle worker', () => {
  const data = randomBytes(20 * MiB + 17);
  const sha256 = createHash('sha256').update(data).digest('hex');

  /** Stages `data`: size and sha256 known, the event loop's buffers barely grow, the bytes come back intact. */
  async function expectStagedOffLoop(stage: () => Promise<StagedBundle>): Promise<void> {
    const before = loopBuffers();
    const staged = await stage();
    try {
      expect({ size: staged.size, sha256: staged.sha256 }).toEqual({ size: data.length, sha256 });
      // Held on the event loop, the file alone would add 20 MiB here (twice, with a read's chunks).
      expect(loopBuffers() - before).toBeLessThan(4 * MiB);
      expect((await staged.bytes()).equals(data)).toBe(true);
    } finally {
      staged.close();
    }
  }

  it('reads a file in the worker: size and sha256 known, the bytes stay off the event loop until asked', async () => {
    const path = join(tempDir('verdict-staged-'), 'bundle.tar.gz');
    writeFileSync(path, data);
    await expectStagedOffLoop(() => StagedBundle.fromFile(path, 32 * MiB, 'bundle', staging));
  });

  it('streams a body to the worker chunk by chunk (transferred, not kept) and assembles it intact', async () => {
    await expectStagedOffLoop(() => StagedBundle.fromStream(chunksOf(data, 64 * 1024), 32 * MiB, 'bundle', staging));
  });

  it('yields to the event loop at least every MiB while a stream hands out chunks it already holds', async () => {
    // An async generator that never awaits resumes in microtasks: without yields of its own, the staging
    // loop would copy and post all 20 MiB in one event-loop turn, and no setImmediate could run meanwhile.
    let turns = 0;
    let feeding = true;
    const tick = (): void => void (feeding && (turns++, setImmediate(tick)));
    setImmediate(tick);
    let turnsWhileFeeding = 0;
    async function* buffered(): AsyncGenerator<Uint8Array> {
      yield* chunksOf(data, 64 * 1024);
      turnsWhileFeeding = turns;
      feeding = false;
    }
    const staged = await StagedBundle.fromStream(buffered(), 32 * MiB, 'bundle', staging);
    staged.close();
    expect(staged.sha256).toBe(sha256);
    expect(turnsWhileFeeding).toBeGreaterThanOrEqual(Math.floor(data.length / MiB) - 1);
  });

  it('refuses a body over the bound (ERR_BUNDLE_TOO_LARGE) without reading the rest', async () => {
    let pulled = 0;
    async function* counted(): AsyncGenerator<Uint8Array> {
      for await (const c of chunksOf(data, MiB)) {
        pulled++;
        yield c;
      }
    }
    await expect(StagedBundle.fromStream(counted(), 4 * MiB, 'bundle', staging)).rejects.toMatchObject({ code: 'ERR_BUNDLE_TOO_LARGE' });
    expect(pulled).toBe(5);
  });

  it.each([
    { name: 'a file over maxBytes', make: (p: string) => writeFileSync(p, data), code: 'ERR_BUNDLE_TOO_LARGE' },
    { name: 'a FIFO', make: (p: string) => execFileSync('mkfifo', [p]), code: 'ERR_BUNDLE_FILE_TYPE' },
    { name: 'a directory', make: (p: string) => execFileSync('mkdir', [p]), code: 'ERR_BUNDLE_FILE_TYPE' },
    { name: 'a missing file', make: () => undefined, code: 'ERR_BUNDLE_SOURCE' },
  ])('refuses $name in the worker with $code', async ({ make, code }) => {
    const path = join(tempDir('verdict-staged-'), 'bundle.tar.gz');
    make(path);
    await expect(StagedBundle.fromFile(path, MiB, 'bundle', staging)).rejects.toMatchObject({ code });
  });
});
