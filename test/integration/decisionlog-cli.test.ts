import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/verdict-harness';

const run = promisify(execFile);
const root = join(__dirname, '..', '..');
const cli = join(root, 'bin', 'verdict.js');

describe('decision-log commands given a directory', () => {
  const dir = join(tempDir(), 'not-a-log');
  mkdirSync(dir);

  it.each([
    ['decisionlog verify', ['decisionlog', 'verify', dir]],
    ['shadow report', ['shadow', 'report', '--log', dir]],
    ['replay', ['replay', '--log', dir, '--bundle', join(root, 'dist', 'bundles', 'default.tar.gz')]],
  ])('%s exits 1 with one coded line (ERR_DECISIONLOG_FILE), no stack trace', async (_name, args) => {
    const failed = await run(process.execPath, [cli, ...args]).catch((e: { code: number; stderr: string }) => e);
    expect((failed as { code: number }).code).toBe(1);
    expect((failed as { stderr: string }).stderr).toMatch(/^verdict: ERR_DECISIONLOG_FILE: [^\n]*\n$/);
  });
});
