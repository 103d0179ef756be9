import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatShadowReport, shadowReport } from '../../../src/shadow/shadow-report';
import { tempDir } from '../../helpers/verdict-harness';

// `verdict shadow report --log FILE` reads a file anyone may have written: fields of the wrong type and
// very many candidates, generated here.

function file(lines: unknown[]): string {
  const path = join(tempDir(), 'decisions.log');
  writeFileSync(path, lines.map((l) => JSON.stringify(l)).join('\n'));
  return path;
}

const flip = (id: string, candidate: unknown, extra: Record<string, unknown> = {}) => ({
  kind: 'shadow',
  decision_id: id,
  shadow: { direction: 'allow_to_deny', candidate, ...extra },
});

describe('verdict shadow report on a hostile log', () => {
  it('prints a report whose candidate bundle fields and reasons are numbers or objects (the text format threw a TypeError)', async () => {
    const report = await shadowReport(
      file([
        flip('a', { bundle: { sha256: 5, name: {}, revision: [1] }, reason: 7 }, { decided_at: { t: 1 }, active: { reason: null } }),
        flip('b', { bundle: 'not an object' }),
      ]),
    );
    expect(report.candidates).toEqual([{ name: '', revision: '', sha256: '', disagreements: 2 }]);
    expect(report.byDirection.allow_to_deny.examples[0]).toEqual({ decision_id: 'a', decided_at: '', active: '?', candidate: '?' });
    expect(formatShadowReport(report)).toContain('allow to deny: 2');
  });

  it('names at most 1,000 candidate bundles, counting every flip, and says the list was cut', async () => {
    const lines = Array.from({ length: 1500 }, (_, i) => flip(`d${i}`, { bundle: { sha256: `sha-${i}` } }));
    const report = await shadowReport(file(lines));
    expect(report.candidates).toHaveLength(1000);
    expect(report.byDirection.allow_to_deny.count).toBe(1500);
    expect(report.truncated).toBe(true);
  });
});
