import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { defaultBundlePath } from '../../src/package-root';
import { readBundle } from '../../src/policy/bundle-reader';
import { OPAEngine } from '../../src/policy/engine-opa';
import type { InputDocument } from '../../src/request/input-document';

// opa-wasm keeps its linear memory at the high-water mark of the largest input it has seen, and wasm
// memory never shrinks. verdict bounds it: a hard maximum, and recycling an instance that grew too far.

async function engine(maxMemoryPages: number, recycleMemoryPages: number, recycles: string[]): Promise<OPAEngine> {
  const path = defaultBundlePath();
  const bundle = await readBundle(await readFile(path), path);
  return (await OPAEngine.create(bundle, {
    entrypoint: 'envoy/authz/allow',
    maxMemoryPages,
    recycleMemoryPages,
    onRecycle: (why) => recycles.push(why),
  })) as OPAEngine;
}

function input(path: string, padBytes = 0): InputDocument {
  return {
    attributes: { request: { http: { method: 'GET', path, headers: padBytes > 0 ? { 'x-pad': 'p'.repeat(padBytes) } : {} } } },
    parsed_path: path.slice(1).split('/'),
    parsed_query: {},
    parsed_body: null,
    truncated_body: false,
    version: { ext_authz: 'v3', encoding: 'protojson' },
  };
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

  it('denies an input larger than the hard maximum with ERR_POLICY_EVAL and keeps working', async () => {
    const recycles: string[] = [];
    const e = await engine(48, 32, recycles);
    expect(() => e.evaluate(input('/healthz', 8 * 1024 * 1024))).toThrow(expect.objectContaining({ code: 'ERR_POLICY_EVAL' }));
    expect(recycles).toEqual(['trap']);
    expect(e.evaluate(input('/healthz')).allowed).toBe(true);
    expect(e.memoryPages()).toBeLessThanOrEqual(48);
  });
});
