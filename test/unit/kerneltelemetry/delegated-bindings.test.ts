import { closeSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/clock';
import { configSchema } from '../../../src/config/schema';
import { DelegatedBindings } from '../../../src/kerneltelemetry/delegated-bindings';
import { createLogger } from '../../../src/telemetry/logger';
import { fifo } from '../../helpers/fifo';
import { tempDir } from '../../helpers/verdict-harness';

// How a pass over the table is scheduled, not what the agent answers (the real agent's answers are in
// test/integration/kernel-telemetry-delegated-identity.test.ts). The "cgroups" are directories holding a
// cgroup.procs that names this very process, which is all a pass reads; the client only records which PIDs
// were subscribed, since these subscriptions are never answered.
// `procs` makes a group's cgroup.procs (by default a regular file naming this process).
function table(
  groups: number,
  procs: (dir: string, i: number) => void = (dir) => writeFileSync(join(dir, 'cgroup.procs'), `${process.pid}\n`),
): { bindings: DelegatedBindings; subscribed: () => number; cancelled: () => number } {
  const root = tempDir('verdict-delegated-pass-');
  const paths = Array.from({ length: groups }, (_, i) => {
    const dir = join(root, `g${i}`);
    mkdirSync(dir);
    procs(dir, i);
    return dir;
  });
  let subscribed = 0;
  let cancelled = 0;
  const settings = { ...configSchema.parse({}).kernelTelemetry.delegatedIdentity, pidsPerCgroup: 1 };
  const bindings = new DelegatedBindings(settings, paths, {
    client: {
      subscribeX509SVIDs: () => {
        subscribed++;
        return { cancel: () => void cancelled++ };
      },
    },
    clock: systemClock,
    logger: createLogger('silent'),
    publish: () => undefined,
    streamError: () => undefined,
    updateSeen: () => undefined,
  });
  return { bindings, subscribed: () => subscribed, cancelled: () => cancelled };
}

describe('Delegated Identity: a pass over the table', () => {
  it('reads 64 cgroups per event-loop turn, and does not start a second pass while one is under way', async () => {
    const t = table(150);
    t.bindings.check();
    expect(t.subscribed()).toBe(64); // the rest waits for the next turns
    t.bindings.check(); // due again before the first pass ended: ignored
    await nextTurn();
    expect(t.subscribed()).toBe(128);
    await nextTurn();
    expect(t.subscribed()).toBe(150);
    t.bindings.close();
    expect(t.cancelled()).toBe(150);
  });

  it('stops a pass under way at close: no stream is opened after it', async () => {
    const t = table(150);
    t.bindings.check();
    t.bindings.close();
    await nextTurn();
    await nextTurn();
    expect(t.subscribed()).toBe(64);
    expect(t.cancelled()).toBe(64);
  });

  it('a cgroup.procs that is a FIFO, a symlink or a directory is read as no PIDs, without blocking the pass', () => {
    const ends: number[] = [];
    const t = table(4, (dir, i) => {
      const path = join(dir, 'cgroup.procs');
      if (i === 0) {
        // A FIFO with a writer that never writes: a blocking read of it would never return.
        const { readEnd, writeEnd } = fifo(dir, 'cgroup.procs');
        ends.push(readEnd, writeEnd);
      } else if (i === 1) {
        writeFileSync(join(dir, 'real'), `${process.pid}\n`);
        symlinkSync(join(dir, 'real'), path);
      } else if (i === 2) mkdirSync(path);
      else writeFileSync(path, `${process.pid}\n`);
    });
    try {
      t.bindings.check();
      expect(t.subscribed()).toBe(1); // only the regular file's PID
      t.bindings.close();
    } finally {
      for (const fd of ends) closeSync(fd);
    }
  });
});
