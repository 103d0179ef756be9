import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileSink } from '../../../src/decisionlog/sink-file';
import { EventMask } from '../../../src/decisionlog/event-mask';
import { GENESIS_HASH, verifyChain } from '../../../src/decisionlog/hash-chain';
import { pipeline, recordWithSecrets, SECRETS, waitFor } from '../../helpers/decisionlog-fixtures';
import { tempDir } from '../../helpers/verdict-harness';

function lines(file: string): string[] {
  return existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
    : [];
}

describe('decision-log masking', () => {
  it('keeps secrets out of every byte written: sink file and spool', async () => {
    const dir = tempDir();
    const out = join(dir, 'decisions.log');
    const log = pipeline([new FileSink({ path: out, maxBytes: 1 << 20, maxFiles: 2 })], join(dir, 'spool'));
    await log.start();
    const { record, decision } = recordWithSecrets(1);
    log.emit(record, decision);
    await waitFor(() => lines(out).length === 1, 'one event in the file');
    await log.close();
    const written = [
      readFileSync(out, 'utf8'),
      ...readdirSync(join(dir, 'spool')).map((f) => readFileSync(join(dir, 'spool', f), 'utf8')),
    ].join('');
    for (const secret of Object.values(SECRETS)) expect(written).not.toContain(secret);
    const event = JSON.parse(lines(out)[0] as string) as {
      erased: string[];
      input: { attributes: { request: { http: { headers: object } } } };
    };
    expect(event.erased).toEqual([
      '/input/attributes/request/http/headers/authorization',
      '/input/attributes/request/http/headers/cookie',
      '/input/attributes/source/certificate',
    ]);
    expect(event.input.attributes.request.http.headers).toEqual({ 'x-seq': '1' });
    // The engine's and observers' record is untouched (copy-on-write).
    expect((record.input as { attributes: { source: { certificate: string } } }).attributes.source.certificate).toBe(SECRETS.certificate);
  });

  it('replaces instead of removing when asked, and ignores paths that are absent', () => {
    const mask = new EventMask([{ path: 'input.user.password', replaceWith: '***' }, '/input/none/here']);
    const { event, erased, masked } = mask.apply({ input: { user: { password: 'p', name: 'n' } } });
    expect(event).toEqual({ input: { user: { password: '***', name: 'n' } } });
    expect([erased, masked]).toEqual([[], ['/input/user/password']]);
  });

  it('masks every casing of a field name, along shared prefixes, leaving the original untouched', () => {
    const mask = new EventMask(['/input/headers/authorization', '/input/headers/cookie', 'input.cert']);
    const original = {
      input: { headers: { Authorization: 'a1', authorization: 'a2', COOKIE: 'c', accept: 'x' }, Cert: 'pem', keep: 1 },
    };
    const { event, erased } = mask.apply(original);
    expect(event).toEqual({ input: { headers: { accept: 'x' }, keep: 1 } });
    expect(erased).toEqual(['/input/headers/authorization', '/input/headers/cookie', '/input/cert']);
    expect(original.input.headers.Authorization).toBe('a1');
  });
});

describe('decision-log file sink rotation and hash chain', () => {
  it('rotates by size, keeps maxFiles, and the chain runs unbroken across the files', async () => {
    const dir = tempDir();
    const out = join(dir, 'decisions.log');
    const log = pipeline([new FileSink({ path: out, maxBytes: 8 * 1024, maxFiles: 20 })], join(dir, 'spool'));
    await log.start();
    for (let i = 0; i < 60; i++) {
      const { record, decision } = recordWithSecrets(i);
      log.emit(record, decision);
    }
    const files = (): string[] => [...Array.from({ length: 20 }, (_, i) => `${out}.${20 - i}`), out].filter((f) => existsSync(f));
    await waitFor(() => files().reduce((n, f) => n + lines(f).length, 0) === 60, 'all 60 events in the files');
    await log.close();
    expect(files().length).toBeGreaterThan(2);
    for (const f of files()) expect(statSync(f).size).toBeLessThanOrEqual(8 * 1024);
    const all = files().flatMap(lines);
    const seqs = all.map((l) => (JSON.parse(l) as { input: { parsed_path: string[] } }).input.parsed_path[1]);
    expect(seqs).toEqual(Array.from({ length: 60 }, (_, i) => String(i)));
    expect(verifyChain(all, GENESIS_HASH)).toMatchObject({ ok: true, lines: 60 });
  });

  it('detects an edited line, a removed line and a reordering', async () => {
    const dir = tempDir();
    const out = join(dir, 'decisions.log');
    const log = pipeline([new FileSink({ path: out, maxBytes: 1 << 20, maxFiles: 1 })], join(dir, 'spool'));
    await log.start();
    for (let i = 0; i < 10; i++) {
      const { record, decision } = recordWithSecrets(i, i % 2 === 0);
      log.emit(record, decision);
    }
    await waitFor(() => lines(out).length === 10, '10 events');
    await log.close();
    const good = lines(out);
    expect(verifyChain(good).ok).toBe(true);
    const edited = [...good];
    edited[3] = (edited[3] as string).replace('"allowed":false', '"allowed":true'); // a deny made an allow
    expect(edited[3]).not.toBe(good[3]);
    writeFileSync(out, `${edited.join('\n')}\n`);
    expect(verifyChain(lines(out)).broken).toEqual([{ line: 5, why: 'prev_hash does not match the line before' }]);
    expect(verifyChain([...good.slice(0, 3), ...good.slice(4)]).broken.map((b) => b.line)).toEqual([4]);
    expect(verifyChain([good[1] as string, good[0] as string, ...good.slice(2)]).ok).toBe(false);
  });

  it('continues the chain after a restart from the spool', async () => {
    const dir = tempDir();
    const out = join(dir, 'decisions.log');
    for (let run = 0; run < 2; run++) {
      const log = pipeline([new FileSink({ path: out, maxBytes: 1 << 20, maxFiles: 1 })], join(dir, 'spool'));
      await log.start();
      for (let i = 0; i < 5; i++) {
        const { record, decision } = recordWithSecrets(run * 5 + i);
        log.emit(record, decision);
      }
      await waitFor(() => lines(out).length === (run + 1) * 5, 'events of this run');
      await log.close();
    }
    expect(verifyChain(lines(out), GENESIS_HASH)).toMatchObject({ ok: true, lines: 10 });
  });

  it('counts (never silently drops) events when the spool is full, and keeps the chain intact', async () => {
    const dir = tempDir();
    const out = join(dir, 'decisions.log');
    // A sink that never acknowledges keeps everything in the spool; the spool bound is tiny.
    const stuck = { name: 'stuck', send: () => new Promise<void>(() => {}), close: async () => {} };
    const log = pipeline([stuck], join(dir, 'spool'), { spoolMaxBytes: 64 * 1024, drainOnCloseMs: 0 });
    await log.start();
    const metrics = (log as unknown as { options: { metrics: import('../../../src/telemetry/metrics').Metrics } }).options.metrics;
    for (let i = 0; i < 200; i++) {
      const { record, decision } = recordWithSecrets(i);
      log.emit(record, decision);
      await Promise.resolve();
    }
    await new Promise((r) => setImmediate(r));
    const lost = (await metrics.decisionLogLost.get()).values.find((v) => v.labels.why === 'spool_full')?.value ?? 0;
    const spooled = (await metrics.decisionLogEvents.get()).values.find((v) => v.labels.stage === 'spooled')?.value ?? 0;
    expect(lost).toBeGreaterThan(0);
    expect(lost + spooled).toBe(200);
    const spoolLines = readdirSync(join(dir, 'spool'))
      .filter((f) => f.endsWith('.log'))
      .sort()
      .flatMap((f) => lines(join(dir, 'spool', f)));
    expect(spoolLines.length).toBe(spooled);
    expect(verifyChain(spoolLines).ok).toBe(true);
    void out;
    await log.close();
  });
});
