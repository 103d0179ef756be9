import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { toolPath } from '../../src/cli/tools';
import { defaultBundlePath, packageRoot } from '../../src/package-root';
import { readBundle } from '../../src/policy/bundle-reader';
import { OPAEngine } from '../../src/policy/engine-opa';
import type { PolicyEngine } from '../../src/policy/policy-engine';
import type { InputDocument } from '../../src/request/input-document';
import { tempDir } from '../helpers/verdict-harness';

// The same requests through the Rego source (real `opa eval`) and through the wasm bundle built from it
// must give the same decisions — the wasm compiler and opa-wasm SDK change nothing.

interface Case {
  name: string;
  input: InputDocument;
  expected: { allowed: boolean; reason: string };
}

// The shared table of realistic requests (input documents) every engine's parity test uses.
const { cases: CASES } = JSON.parse(
  readFileSync(join(packageRoot(), 'test', 'fixtures', 'requests', 'default-policy-cases.json'), 'utf8'),
) as {
  cases: Case[];
};

describe('default policy: opa eval (Rego source) and opa-wasm (bundle) agree', () => {
  let engine: PolicyEngine;
  let regoResults: { allowed: boolean; reason?: string }[];

  beforeAll(async () => {
    const path = defaultBundlePath();
    engine = await OPAEngine.create(await readBundle(await readFile(path), path), {
      entrypoint: 'envoy/authz/allow',
      maxMemoryPages: 1024,
      recycleMemoryPages: 256,
    });
    // One `opa eval` over all inputs: the query evaluates the rule once per element, each `with input as` it.
    const inputFile = join(tempDir(), 'inputs.json');
    await writeFile(inputFile, JSON.stringify(CASES.map((c) => c.input)));
    const { stdout } = await promisify(execFile)(
      toolPath('opa'),
      [
        'eval',
        '--format',
        'json',
        '-b',
        join(packageRoot(), 'policies', 'default'),
        '-i',
        inputFile,
        '[r | some x in input; r := data.envoy.authz.allow with input as x]',
      ],
      { maxBuffer: 16 * 1024 * 1024 },
    );
    const out = JSON.parse(stdout) as { result: { expressions: { value: { allowed: boolean; reason?: string }[] }[] }[] };
    regoResults = out.result[0]?.expressions[0]?.value ?? [];
  });

  it('covers at least 30 cases', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(30);
    expect(regoResults).toHaveLength(CASES.length);
  });

  CASES.forEach((c, i) => {
    it(c.name, async () => {
      const wasm = await engine.evaluate(c.input);
      const rego = regoResults[i];
      expect(wasm.allowed).toBe(rego?.allowed);
      expect(wasm.reasons[0]).toBe(rego?.reason);
      expect({ allowed: wasm.allowed, reason: wasm.reasons[0] }).toEqual(c.expected);
    });
  });
});
