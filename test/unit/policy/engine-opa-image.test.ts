import { readFile } from 'node:fs/promises';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { createRequire } from 'node:module';
import { defaultBundlePath } from '../../../src/package-root';
import type { PolicyBundle } from '../../../src/policy/bundle';
import { readBundle } from '../../../src/policy/bundle-reader';
import { OPAEngine } from '../../../src/policy/engine-opa';
import { mutableGlobalCount } from '../../../src/policy/wasm-globals';
import { httpInput } from '../../helpers/input-document';

// An OPA module's data is loaded in a worker and copied to the event loop as a memory image
// (engine-opa-trial.ts); that is sound only for modules whose one mutable global is the stack pointer.

const opaWasm = createRequire(__filename)('@open-policy-agent/opa-wasm') as typeof import('@open-policy-agent/opa-wasm');

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    const b = n & 0x7f;
    n = Math.floor(n / 128);
    out.push(n > 0 ? b | 0x80 : b);
  } while (n > 0);
  return out;
}

/** A module with only a global section: i32 globals initialised by `i32.const value`. */
function moduleWithGlobals(globals: { mutable: boolean; value: number }[]): Uint8Array {
  const body = [...leb(globals.length)];
  for (const g of globals) body.push(0x7f, g.mutable ? 1 : 0, 0x41, ...leb(g.value), 0x0b);
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x06, ...leb(body.length), ...body]);
}

async function defaultBundle(): Promise<PolicyBundle> {
  const path = defaultBundlePath();
  return readBundle(await readFile(path), path);
}

const OPTIONS = { entrypoint: 'envoy/authz/allow', maxMemoryPages: 4096, recycleMemoryPages: 256 };

describe('OPA data loaded as a memory image', () => {
  it('counts the mutable globals of generated modules exactly, and the one of opa build’s policy.wasm', async () => {
    fc.assert(
      fc.property(
        // Values up to 2^31 - 1 put 0x0b (the end opcode) inside LEB immediates too.
        fc.array(fc.record({ mutable: fc.boolean(), value: fc.integer({ min: 0, max: 0x7fffffff }) }), { maxLength: 40 }),
        (globals) => {
          const wasm = moduleWithGlobals(globals);
          expect(WebAssembly.validate(wasm)).toBe(true);
          expect(mutableGlobalCount(wasm)).toBe(globals.filter((g) => g.mutable).length);
        },
      ),
      { numRuns: 300 },
    );
    const policy = (await defaultBundle()).files.get('policy.wasm') as Buffer;
    expect(mutableGlobalCount(policy)).toBe(1);
    // A section length past the end of the bytes is "unknown", never a read out of bounds.
    expect(mutableGlobalCount(new Uint8Array([0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0x06, 0x7f, 1]))).toBeNull();
  });

  it('refuses an OPA module with two mutable globals (ERR_BUNDLE_ENGINE) before it runs', async () => {
    const bundle = await defaultBundle();
    const twoGlobals = Buffer.from(
      moduleWithGlobals([
        { mutable: true, value: 1 },
        { mutable: true, value: 2 },
      ]),
    );
    const hostile: PolicyBundle = { ...bundle, files: new Map([...bundle.files, ['policy.wasm', twoGlobals]]) };
    // Any non-OPA module fails somewhere with ERR_BUNDLE_ENGINE; this one must fail at the globals check.
    await expect(OPAEngine.create(hostile, OPTIONS)).rejects.toMatchObject({
      code: 'ERR_BUNDLE_ENGINE',
      message: expect.stringContaining('2 mutable globals'),
    });
  });

  it('never calls setData on the event loop, and decides from the data the worker loaded, also after a recycle', async () => {
    const bundle = await defaultBundle();
    // An allow rule that exists only in this data: a decision that depends on data reaching the instance.
    const data = JSON.parse((bundle.files.get('data.json') as Buffer).toString()) as { mesh: { allow: unknown[] } };
    data.mesh.allow.push({ id: 'image-probe', principals: ['anyone'], methods: ['GET'], paths: ['/image-probe'] });
    const withData: PolicyBundle = { ...bundle, files: new Map([...bundle.files, ['data.json', Buffer.from(JSON.stringify(data))]]) };
    // The prototype of the instances opa-wasm makes on this thread.
    const probe = opaWasm.loadPolicySync(await WebAssembly.compile(bundle.files.get('policy.wasm') as Buffer), { initial: 5 });
    const setData = vi.spyOn(Object.getPrototypeOf(probe) as { setData: (d: unknown) => void }, 'setData');
    try {
      const recycles: string[] = [];
      const engine = (await OPAEngine.create(withData, {
        ...OPTIONS,
        recycleMemoryPages: 16,
        onRecycle: (why) => recycles.push(why),
      })) as OPAEngine;
      expect(engine.evaluate(httpInput('/image-probe'))).toMatchObject({ allowed: true, headers: [['x-verdict-rule', 'image-probe']] });
      expect(engine.evaluate(httpInput('/not-allowed')).allowed).toBe(false);
      // One large input grows the memory past the bound: the fresh instance comes from the image.
      expect(engine.evaluate(httpInput('/image-probe', { 'x-pad': 'p'.repeat(4 * 1024 * 1024) })).allowed).toBe(true);
      expect(recycles).toEqual(['memory']);
      expect(engine.evaluate(httpInput('/image-probe'))).toMatchObject({ allowed: true, headers: [['x-verdict-rule', 'image-probe']] });
      expect(setData).not.toHaveBeenCalled();
    } finally {
      setData.mockRestore();
    }
  });
});
