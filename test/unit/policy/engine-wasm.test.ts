import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VerdictError } from '../../../src/errors';
import type { PolicyBundle } from '../../../src/policy/bundle';
import { WasmEngine } from '../../../src/policy/engine-wasm';
import type { InputDocument } from '../../../src/request/input-document';
import { assemble, CALL_IMPORT, ifOddLength, LOOP_FOREVER, returns, TRAP } from './engine-wasm-modules';
import { codeOfAsync } from '../../helpers/error-code';

// Real modules compiled at test time by the AssemblyScript compiler (the same toolchain as the example
// engine); each one misbehaves in one way a real engine could.

const ROOT = join(__dirname, '../../..');
const EXAMPLE = join(ROOT, 'dist/engines/mesh-acl.wasm');

const EVEN = '{"allowed":true,"reason":"even"}';
const MODULES: Record<string, Buffer> = {
  // Traps on odd input lengths, decides on even ones: verdict must deny the first and keep serving.
  trap: assemble({ evaluate: [...ifOddLength(TRAP), ...returns(0, EVEN.length)], data: EVEN }),
  loop: assemble({ evaluate: [...ifOddLength(LOOP_FOREVER), ...returns(0, EVEN.length)], data: EVEN }),
  garbage: assemble({ evaluate: returns(0, 15), data: 'not json at all' }),
  badShape: assemble({ evaluate: returns(0, 17), data: '{"allowed":"yes"}' }),
  badPointer: assemble({ evaluate: returns(0x7fff0000, 64) }),
  imports: assemble({ evaluate: CALL_IMPORT, withImport: true }),
  noMaximum: assemble({ evaluate: returns(0, 4), data: 'true', maxPages: null }),
  // A start function runs at instantiation, before any call: this one never returns.
  startLoops: assemble({ evaluate: returns(0, 4), data: 'true', start: LOOP_FOREVER }),
  // memory.grow(15) on every call (i32.const 15; memory.grow 0; drop): the first call reaches the 16-page
  // maximum, later ones get -1 from grow (no trap) and still answer.
  grows: assemble({ evaluate: [0x41, 15, 0x40, 0x00, 0x1a, ...returns(0, 4)], data: 'true', maxPages: 16 }),
};

function bundleOf(module: Buffer): PolicyBundle {
  return {
    name: 'custom',
    revision: '',
    sha256: 'test',
    engine: 'wasm',
    manifest: { metadata: { verdict: { engine: 'wasm' } } },
    files: new Map([['engine.wasm', module]]),
    compressedBytes: module.length,
  };
}

/** An input whose JSON length has the given parity (the misbehaving modules key on it). */
function input(parity: 'odd' | 'even', path = '/x'): InputDocument {
  for (let pad = ''; ; pad += 'a') {
    const doc: InputDocument = {
      attributes: { request: { http: { method: 'GET', path, headers: { 'x-pad': pad } } } },
      parsed_path: [],
      parsed_query: {},
      parsed_body: null,
      truncated_body: false,
      version: { ext_authz: 'v3', encoding: 'protojson' },
    };
    if (Buffer.byteLength(JSON.stringify(doc)) % 2 === (parity === 'odd' ? 1 : 0)) return doc;
  }
}

const SETTINGS = { timeoutMs: 200, maxMemoryPages: 16, maxInputBytes: 64 * 1024, maxOutputBytes: 4096 };

describe('custom wasm engine', () => {
  const modules: Record<string, Buffer> = { ...MODULES };
  const engines: WasmEngine[] = [];
  const load = async (name: string, settings = SETTINGS): Promise<WasmEngine> => {
    const e = await WasmEngine.load(bundleOf(modules[name] as Buffer), settings);
    engines.push(e);
    return e;
  };
  beforeAll(() => {
    // The example engine is built by `npm run build` (AssemblyScript); tests use that build.
    if (!existsSync(EXAMPLE)) throw new Error(`${EXAMPLE} is missing: run "npm run build" first (it compiles engines/mesh-acl)`);
    modules.meshACL = readFileSync(EXAMPLE);
  });
  afterAll(() => {
    for (const e of engines) e.close();
  });

  it('runs the example engine (mesh-acl) on the shared request table', async () => {
    const e = await load('meshACL');
    const table = JSON.parse(readFileSync(join(ROOT, 'test/fixtures/requests/default-policy-cases.json'), 'utf8')) as {
      cases: { name: string; expected: { allowed: boolean; reason: string }; input: InputDocument }[];
    };
    for (const c of table.cases) {
      const r = await e.evaluate(c.input);
      expect({ name: c.name, allowed: r.allowed, reasons: r.reasons }).toEqual({
        name: c.name,
        allowed: c.expected.allowed,
        reasons: [c.expected.reason],
      });
    }
  });

  it('refuses a module that asks for imports (ERR_ENGINE_IMPORTS), naming them', async () => {
    const err = await WasmEngine.load(bundleOf(modules.imports as Buffer), SETTINGS).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VerdictError);
    expect((err as VerdictError).code).toBe('ERR_ENGINE_IMPORTS');
    expect((err as VerdictError).message).toContain('env.host_clock');
  });

  it('refuses a module whose memory has no maximum, or one above the bound', async () => {
    expect(await codeOfAsync(() => WasmEngine.load(bundleOf(modules.noMaximum as Buffer), SETTINGS))).toBe('ERR_BUNDLE_ENGINE');
    expect(await codeOfAsync(() => WasmEngine.load(bundleOf(modules.trap as Buffer), { ...SETTINGS, maxMemoryPages: 2 }))).toBe(
      'ERR_BUNDLE_ENGINE',
    );
  });

  it('refuses a module whose start function never returns (ERR_BUNDLE_LOAD_TIMEOUT) and stops its worker', async () => {
    expect(await codeOfAsync(() => WasmEngine.load(bundleOf(modules.startLoops as Buffer), SETTINGS, 300))).toBe('ERR_BUNDLE_LOAD_TIMEOUT');
    // The next load is not held up: the same settings load a good module at once.
    const e = await load('trap');
    expect(e.evaluate(input('even'))).toMatchObject({ allowed: true });
  });

  it('refuses a bundle without its module, and bytes that are not wasm', async () => {
    const empty = { ...bundleOf(Buffer.alloc(0)), files: new Map<string, Buffer>() };
    expect(await codeOfAsync(() => WasmEngine.load(empty, SETTINGS))).toBe('ERR_BUNDLE_ENGINE');
    expect(await codeOfAsync(() => WasmEngine.load(bundleOf(Buffer.from('\0asm garbage')), SETTINGS))).toBe('ERR_BUNDLE_ENGINE');
  });

  it('serves a module that grows its memory on every call: the declared maximum stops the growth', async () => {
    const e = await load('grows');
    for (let i = 0; i < 4; i++) expect((await e.evaluate(input('even'))).allowed).toBe(true);
  });

  it('denies a call that traps (ERR_POLICY_EVAL) and keeps serving', async () => {
    const e = await load('trap');
    expect(await codeOfAsync(() => e.evaluate(input('odd')))).toBe('ERR_POLICY_EVAL');
    expect((await e.evaluate(input('even'))).allowed).toBe(true);
    expect(await codeOfAsync(() => e.evaluate(input('odd')))).toBe('ERR_POLICY_EVAL');
    expect((await e.evaluate(input('even'))).reasons).toEqual(['even']);
  });

  it('stops a call that loops forever (ERR_POLICY_TIMEOUT), restarts its worker and keeps serving', async () => {
    const e = await load('loop', { ...SETTINGS, timeoutMs: 30 });
    expect(await codeOfAsync(() => e.evaluate(input('odd')))).toBe('ERR_POLICY_TIMEOUT');
    expect(e.restarts).toBe(1);
    expect((await e.evaluate(input('even'))).allowed).toBe(true);
    expect(await codeOfAsync(() => e.evaluate(input('odd')))).toBe('ERR_POLICY_TIMEOUT');
    expect((await e.evaluate(input('even'))).allowed).toBe(true);
    expect(e.restarts).toBe(2);
  });

  const garbage: { name: string; module: string; code: string }[] = [
    { name: 'bytes that are not JSON', module: 'garbage', code: 'ERR_POLICY_RESULT' },
    { name: 'JSON of the wrong shape', module: 'badShape', code: 'ERR_POLICY_RESULT' },
    { name: 'a pointer outside its memory', module: 'badPointer', code: 'ERR_POLICY_RESULT' },
  ];
  for (const g of garbage) {
    it(`denies a module that returns ${g.name} (${g.code})`, async () => {
      const e = await load(g.module);
      expect(await codeOfAsync(() => e.evaluate(input('even')))).toBe(g.code);
    });
  }

  it('denies an input larger than the bound without running the module', async () => {
    const e = await load('meshACL', { ...SETTINGS, maxInputBytes: 1024 });
    expect(await codeOfAsync(() => e.evaluate(input('even', `/${'p'.repeat(2000)}`)))).toBe('ERR_POLICY_INPUT');
    expect((await e.evaluate(input('even', '/healthz'))).allowed).toBe(true);
  });
});
