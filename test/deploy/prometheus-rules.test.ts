import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/package-root';
import { exportedSeriesNames, referencedSeries } from '../helpers/metric-names';
import { pinnedTool } from '../helpers/pinned-tool';

// deploy/prometheus/verdict-rules.yaml, checked by the pinned promtool: syntax (`check rules`), behaviour
// (`test rules` on verdict-rules.test.yaml, where each alert fires on its cause and stays silent on its
// look-alikes), and every series it names is one verdict really exports.

const run = promisify(execFile);
const dir = join(packageRoot(), 'deploy', 'prometheus');
const rulesFile = join(dir, 'verdict-rules.yaml');

interface RuleGroup {
  name: string;
  rules: { record?: string; alert?: string; expr: string; labels?: Record<string, string> }[];
}

function ruleGroups(): RuleGroup[] {
  return (parse(readFileSync(rulesFile, 'utf8')) as { groups: RuleGroup[] }).groups;
}

async function promtool(...args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await run(pinnedTool('promtool'), args, { cwd: dir, maxBuffer: 4 * 1024 * 1024 });
    return stdout + stderr;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`promtool ${args.join(' ')} failed:\n${e.stdout ?? ''}${e.stderr ?? e.message}`);
  }
}

describe('deploy/prometheus rules', () => {
  it('pass promtool check rules', async () => {
    expect(await promtool('check', 'rules', rulesFile)).toMatch(/SUCCESS: \d+ rules found/);
  });

  it('pass their promtool unit tests', async () => {
    expect(await promtool('test', 'rules', 'verdict-rules.test.yaml')).toMatch(/SUCCESS/);
  });

  it('name only series verdict exports', async () => {
    const exported = await exportedSeriesNames();
    const named = ruleGroups().flatMap((g) => g.rules.flatMap((r) => referencedSeries(r.expr)));
    expect(named.length).toBeGreaterThan(8);
    expect(named.filter((n) => !exported.has(n))).toEqual([]);
  });

  it.each([
    ['decision error rate', 'VerdictDecisionErrors'],
    ['fail-closed reasons', 'VerdictFailingClosed'],
    ['bundle source down', 'VerdictBundleSourceDown'],
    ['bundle stale', 'VerdictBundleStale'],
    ['SVID expiring', 'VerdictSVIDExpiringSoon'],
    ['decision-log backlog', 'VerdictDecisionLogBacklog'],
    ['decision-log loss', 'VerdictDecisionLogLoss'],
    ['fast path off', 'VerdictFastpathOff'],
  ])('cover %s (%s) with a severity, and a unit test', (_what, alert) => {
    const rule = ruleGroups()
      .flatMap((g) => g.rules)
      .find((r) => r.alert === alert);
    expect(rule?.labels?.severity).toMatch(/^(warning|critical)$/);
    expect(readFileSync(join(dir, 'verdict-rules.test.yaml'), 'utf8')).toContain(`alertname: ${alert}\n`);
  });
});
