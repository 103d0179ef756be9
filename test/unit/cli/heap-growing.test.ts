import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../../src/package-root';

// server.heapGrowingPercent really changes V8's old-generation growth: a child process applies it (the
// built module, as `verdict serve` does), keeps ~8 MiB live and churns short-lived objects through a small
// young generation, and reports the largest old space it saw. Each case runs in its own process since V8
// flags are process-wide.

const CHILD = `
const { applyHeapGrowing } = require(${JSON.stringify(join(packageRoot(), 'dist', 'src', 'cli', 'heap-growing.js'))});
applyHeapGrowing({ server: { heapGrowingPercent: Number(process.env.PERCENT) } });
const v8 = require('node:v8');
const live = [];
for (let i = 0; i < 20000; i++) live.push({ s: 'x'.repeat(200) + i, n: [i, i + 1] });
let churn = [];
let maxOld = 0;
for (let i = 0; i < 3e6; i++) {
  churn.push({ i, s: 'y' + i });
  if (churn.length > 20000) churn = [];
  if (i % 10000 === 0) maxOld = Math.max(maxOld, v8.getHeapSpaceStatistics().find((s) => s.space_name === 'old_space').space_size);
}
if (live.length !== 20000) throw new Error('live set lost');
process.stdout.write(String(maxOld / 1048576));
`;

function maxOldSpaceMiB(percent: number, flags: string[] = []): number {
  const out = execFileSync(process.execPath, ['--max-semi-space-size=1', ...flags, '-e', CHILD], {
    env: { ...process.env, PERCENT: String(percent) },
    encoding: 'utf8',
  });
  return Number(out);
}

describe('server.heapGrowingPercent', () => {
  it('50 keeps the old generation near the live heap, where V8 alone lets it grow', () => {
    const v8Default = maxOldSpaceMiB(0);
    const fixed = maxOldSpaceMiB(50);
    expect(fixed).toBeLessThan(v8Default * 0.75);
  });

  it('a --heap-growing-percent on the command line wins over the config', () => {
    const fixed = maxOldSpaceMiB(50);
    const commandLine = maxOldSpaceMiB(50, ['--heap-growing-percent=300']);
    expect(commandLine).toBeGreaterThan(fixed / 0.75);
  });
});
