import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { defaultBundlePath } from '../../src/package-root';
import { readBundle } from '../../src/policy/bundle-reader';
import { OPAEngine } from '../../src/policy/engine-opa';
import type { InputDocument } from '../../src/request/input-document';
import { httpInput } from '../helpers/input-document';

// opa-wasm keeps its linear memory at the high-water mark of the largest input it has seen, and wasm
// memory never shrinks. verdict bounds it: a hard maximum, and recycling an instance that grew too far.

/** `data`: one more top-level member of data.json (`"key":value`). */
async function engine(maxMemoryPages: number, recycleMemoryPages: number, recycles: string[], data?: Buffer): Promise<OPAEngine> {
  const path = defaultBundlePath();
  const read = await readBundle(await readFile(path), path);
  // Extra data rides beside the bundle's own (its policy reads data.json).
  const merged = (): Buffer => Buffer.from(`{${data?.toString()},${(read.files.get('data.json') as Buffer).toString().trim().slice(1)}`);
  const bundle = data === undefined ? read : { ...read, files: new Map([...read.files, ['data.json', merged()]]) };
  return (await OPAEngine.create(bundle, {
    entrypoint: 'envoy/authz/allow',
    maxMemoryPages,
    recycleMemoryPages,
    onRecycle: (why) => recycles.push(why),
  })) as OPAEngine;
}

function input(path: string, padBytes = 0): InputDocument {
  return httpInput(path, padBytes > 0 ? { 'x-pad': 'p'.repeat(padBytes) } : {});
}

describe('opa-wasm memory stays bounded', () => {
  it('is flat over 20,000 evaluations of varied small inputs', async () => {
    const recycles: string[] = [];
    const e = await engine(1024, 256, recycles);
    e.evaluate(input('/healthz'));
    const before = e.memoryPages();
    for (let i = 0; i < 20_000; i++) {
      const r = e.evaluate(input(`/public/${i}`, i % 500));
      if (!r.allowed) throw new Error(`unexpected deny at ${i}`);
    }
    expect(e.memoryPages()).toBe(before);
    expect(recycles).toEqual([]);
  });

  it('recycles an instance after one large input grew its memory past the bound', async () => {
    const recycles: string[] = [];
    const e = await engine(1024, 64, recycles);
    const r = e.evaluate(input('/healthz', 6 * 1024 * 1024));
    expect(r.allowed).toBe(true);
    expect(recycles).toEqual(['memory']);
    expect(e.memoryPages()).toBeLessThanOrEqual(64);
    expect(e.evaluate(input('/healthz')).allowed).toBe(true);
  });

  it('counts growth beyond the loaded data: data larger than the bound does not recycle every evaluation', async () => {
    const recycles: string[] = [];
    const rows = Array.from({ length: 60_000 }, (_, i) => `{"id":"u${i}","team":"t${i % 97}"}`);
    const e = await engine(2048, 64, recycles, Buffer.from(`"directory":[${rows.join(',')}]`));
    const loaded = e.memoryPages();
    expect(loaded).toBeGreaterThan(64); // the data alone needs more than recycleMemoryPages
    for (let i = 0; i < 50; i++) expect(e.evaluate(input(`/public/${i}`)).allowed).toBe(true);
    expect(recycles).toEqual([]);
    e.evaluate(input('/healthz', 6 * 1024 * 1024));
    expect(recycles).toEqual(['memory']);
    expect(e.memoryPages()).toBe(loaded);
  });

  it('denies an input larger than the hard maximum with ERR_POLICY_INPUT (request class), without a recycle, and keeps working', async () => {
    const recycles: string[] = [];
    const e = await engine(48, 32, recycles);
    expect(() => e.evaluate(input('/healthz', 8 * 1024 * 1024))).toThrow(expect.objectContaining({ code: 'ERR_POLICY_INPUT' }));
    // Nothing ran and the memory did not grow: the instance is intact (a request could otherwise force a recycle).
    expect(recycles).toEqual([]);
    expect(e.evaluate(input('/healthz')).allowed).toBe(true);
    expect(e.memoryPages()).toBeLessThanOrEqual(48);
  });
});
