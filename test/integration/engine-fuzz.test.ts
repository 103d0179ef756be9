import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VerdictError } from '../../src/errors';
import { readBundle } from '../../src/policy/bundle-reader';
import { engineFactory } from '../../src/policy/engine-registry';
import type { PolicyEngine } from '../../src/policy/policy-engine';
import type { InputDocument } from '../../src/request/input-document';

// Random JSON through each engine's input path, for a fixed budget of cases per engine (seeded, so a
// failure reproduces): every call either decides or throws a VerdictError, and the engine still decides
// a known request correctly afterwards.

const ROOT = join(__dirname, '../..');
const BUDGET = 300;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomValue(r: () => number, depth: number): unknown {
  const k = Math.floor(r() * (depth > 3 ? 5 : 7));
  const strings = [
    '',
    'GET',
    '/api/x',
    'spiffe://example.org/ns/default/sa/frontend',
    '\u0000',
    '"\\',
    'ü🙂',
    'x'.repeat(Math.floor(r() * 300)),
  ];
  switch (k) {
    case 0:
      return null;
    case 1:
      return r() < 0.5;
    case 2:
      return r() < 0.5 ? Math.floor(r() * 1e12) - 5e11 : r() * 1e300;
    case 3:
    case 4:
      return strings[Math.floor(r() * strings.length)];
    case 5:
      return Array.from({ length: Math.floor(r() * 4) }, () => randomValue(r, depth + 1));
    default: {
      const keys = [
        'attributes',
        'request',
        'http',
        'method',
        'path',
        'host',
        'headers',
        'spiffe',
        'id',
        'trust_domain',
        'source',
        'address',
        'zz',
      ];
      const o: Record<string, unknown> = {};
      for (let i = Math.floor(r() * 5); i > 0; i--) o[keys[Math.floor(r() * keys.length)] as string] = randomValue(r, depth + 1);
      return o;
    }
  }
}

const known = (
  JSON.parse(readFileSync(join(ROOT, 'test/fixtures/requests/default-policy-cases.json'), 'utf8')) as {
    cases: { input: InputDocument; expected: { allowed: boolean } }[];
  }
).cases[0];

for (const bundleName of ['cedar-default', 'mesh-acl']) {
  describe(`fuzzing the ${bundleName} engine input path`, () => {
    let engine: PolicyEngine;
    beforeAll(async () => {
      const path = join(ROOT, 'dist/bundles', `${bundleName}.tar.gz`);
      const b = await readBundle(readFileSync(path), path);
      engine = await engineFactory(b.engine)(b, { entrypoint: '', maxMemoryPages: 1024, recycleMemoryPages: 256 });
    });
    afterAll(() => engine.close());

    it(`${BUDGET} random inputs decide or fail with a VerdictError`, async () => {
      const r = rng(bundleName.length * 7919);
      const outcomes = { decided: 0, refused: 0 };
      for (let i = 0; i < BUDGET; i++) {
        const doc = randomValue(r, 0);
        const input = (typeof doc === 'object' && doc !== null && !Array.isArray(doc) ? doc : { attributes: doc }) as InputDocument;
        try {
          const res = await engine.evaluate(input);
          expect(typeof res.allowed).toBe('boolean');
          outcomes.decided++;
        } catch (err) {
          if (!(err instanceof VerdictError)) throw new Error(`case ${i}: ${JSON.stringify(input).slice(0, 200)} threw ${String(err)}`);
          outcomes.refused++;
        }
      }
      expect(outcomes.decided + outcomes.refused).toBe(BUDGET);
      expect((await engine.evaluate(known!.input)).allowed).toBe(known!.expected.allowed);
    });
  });
}
