import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GENESIS_HASH, lineHash, verifyLogFiles } from '../../../src/decisionlog/hash-chain';
import { logLines, type LogLine } from '../../../src/decisionlog/log-lines';
import { replayDecisionLog } from '../../../src/decisionlog/replay';
import { VerdictError } from '../../../src/errors';
import type { PolicyEngine } from '../../../src/policy/policy-engine';
import { shadowReport } from '../../../src/shadow/shadow-report';
import { tempDir } from '../../helpers/verdict-harness';

function file(text: string): string {
  const path = join(tempDir(), 'decisions.log');
  writeFileSync(path, text);
  return path;
}

async function all(path: string, maxLineBytes?: number): Promise<LogLine[]> {
  const out: LogLine[] = [];
  for await (const l of logLines(path, maxLineBytes)) out.push(l);
  return out;
}

async function refusal(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  return err instanceof VerdictError ? err.code : `not a VerdictError: ${String(err)}`;
}

/** A directory, a FIFO and a symlink to /dev/zero: none of them is a log file. */
function notFiles(): [string, string][] {
  const dir = tempDir();
  mkdirSync(join(dir, 'adir'));
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  symlinkSync('/dev/zero', join(dir, 'zero'));
  return [
    ['a directory', join(dir, 'adir')],
    ['a FIFO', join(dir, 'fifo')],
    ['a symlink to /dev/zero', join(dir, 'zero')],
  ];
}

/** An engine that denies everything. */
const denyAll = { kind: 'opa', evaluate: () => ({ allowed: false, reasons: [] }), close: () => undefined } as unknown as PolicyEngine;

describe('the decision-log tools read lines with bounded memory', () => {
  it('numbers every line, across read chunks, including a last line with no newline', async () => {
    const long = 'x'.repeat(200_000);
    expect(await all(file(`a\n${long}\n\nb`))).toEqual([
      { number: 1, text: 'a' },
      { number: 2, text: long },
      { number: 3, text: '' },
      { number: 4, text: 'b' },
    ]);
  });

  it('skips a line longer than the bound, keeping its number, and reads the next one whole', async () => {
    expect(await all(file(`a\n${'y'.repeat(300_000)}\nb\n`), 100_000)).toEqual([
      { number: 1, text: 'a' },
      { number: 2, text: null },
      { number: 3, text: 'b' },
    ]);
  });

  it.each(notFiles())('refuses %s with ERR_DECISIONLOG_FILE, in verify, replay and shadow report', async (_what, path) => {
    expect(await refusal(verifyLogFiles([path]))).toBe('ERR_DECISIONLOG_FILE');
    expect(await refusal(replayDecisionLog(path, denyAll))).toBe('ERR_DECISIONLOG_FILE');
    expect(await refusal(shadowReport(path))).toBe('ERR_DECISIONLOG_FILE');
  });
});

describe('lines that are not events', () => {
  const decision = JSON.stringify({ decision_id: 'd1', input: { a: 1 }, result: { allowed: true } });
  const bad = ['garbage', 'null', '[1,2]', '{"decision_id":"cut'];

  it('replay counts them with their line numbers and replays the rest', async () => {
    const report = await replayDecisionLog(file(`${decision}\n${bad.join('\n')}\n${decision}\n`), denyAll);
    expect(report).toMatchObject({ events: 2, evaluated: 2, malformed: 4, malformedLines: [2, 3, 4, 5] });
    expect(report.allowToDeny.count).toBe(2);
  });

  it('verify reports each as not a JSON object, by line', async () => {
    const first = JSON.stringify({ decision_id: 'a', prev_hash: GENESIS_HASH });
    const check = await verifyLogFiles([file(`${first}\nnull\n`)]);
    expect(check.broken).toEqual([{ line: 2, why: 'not a JSON object' }]);
    expect(check.head).toBe(lineHash('null'));
  });

  it('shadow report counts a direction that is an Object.prototype key as malformed, and leaves Object.prototype alone', async () => {
    const shadow = (direction: string): string =>
      JSON.stringify({ kind: 'shadow', decision_id: direction, shadow: { direction, candidate: { bundle: { sha256: 'c' } } } });
    const report = await shadowReport(file(['constructor', '__proto__', 'toString', 'allow_to_deny'].map(shadow).join('\n')));
    expect(report).toMatchObject({ shadowEvents: 4, malformed: 3, malformedLines: [1, 2, 3] });
    expect(report.byDirection.allow_to_deny.decisionIds).toEqual(['allow_to_deny']);
    expect((Object.prototype as Record<string, unknown>).count).toBeUndefined();
  });
});
