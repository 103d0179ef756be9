import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildPackedBundle, buildRegoBundle } from '../../src/cli/bundle-build';
import { engineFactory } from '../../src/policy/engine-registry';
import type { PolicyEngine } from '../../src/policy/policy-engine';
import type { InputDocument } from '../../src/request/input-document';
import { tempDir } from '../helpers/verdict-harness';

// The same requests through the default policy in Rego (built by the real, pinned opa) and in Cedar
// (policies/cedar-default, packed by `verdict bundle build`): the same allow/deny, case by case.

interface Case {
  name: string;
  expected: { allowed: boolean; reason: string };
  input: InputDocument;
}
const ROOT = join(__dirname, '../..');
const { cases } = JSON.parse(readFileSync(join(ROOT, 'test/fixtures/requests/default-policy-cases.json'), 'utf8')) as { cases: Case[] };
const OPTIONS = { entrypoint: 'envoy/authz/allow', maxMemoryPages: 1024, recycleMemoryPages: 256 };

describe('default policy parity: Rego vs Cedar', () => {
  let rego: PolicyEngine;
  let cedar: PolicyEngine;
  beforeAll(async () => {
    const dir = tempDir('verdict-parity-');
    const regoBundle = await buildRegoBundle(join(ROOT, 'policies/default'), { out: join(dir, 'default.tar.gz') });
    const cedarBundle = await buildPackedBundle(join(ROOT, 'policies/cedar-default'), 'cedar', { out: join(dir, 'cedar.tar.gz') });
    rego = await engineFactory(regoBundle.engine)(regoBundle, OPTIONS);
    cedar = await engineFactory(cedarBundle.engine)(cedarBundle, OPTIONS);
  });

  it('has a table of at least 30 requests', () => {
    expect(cases.length).toBeGreaterThanOrEqual(30);
  });

  for (const c of cases) {
    it(c.name, async () => {
      const r = await rego.evaluate(c.input);
      const k = await cedar.evaluate(c.input);
      expect(r.allowed).toBe(c.expected.allowed);
      expect(k.allowed).toBe(r.allowed);
      // Explanations agree too: Cedar names the same rule (policy @id) Rego's reason does.
      expect(r.reasons).toEqual([c.expected.reason]);
      const cedarReason = c.expected.reason === 'no_rule_matched' ? 'no_policy_matched' : c.expected.reason;
      expect(k.reasons).toContain(cedarReason);
    });
  }
});
