import type { ServerHttp2Session, ServerHttp2Stream } from 'node:http2';
import { describe, expect, it } from 'vitest';
import { StalledCalls } from '../../../src/server/stalled-calls';

// The quarter bookkeeping alone, driven by tick() (no timer): sessions and streams are plain objects standing
// in for node:http2's, which StalledCalls only reads `stream.session` of and marks with its own symbols.
// test/integration/grpc-open-calls.test.ts runs it over real connections.

function harness() {
  const sessions = [{} as ServerHttp2Session, {} as ServerHttp2Session];
  const reported: ServerHttp2Session[] = [];
  const calls = new StalledCalls(1000, sessions, (s) => reported.push(s));
  const open = (session: ServerHttp2Session): ServerHttp2Stream => {
    const stream = { session } as unknown as ServerHttp2Stream;
    calls.opened(stream);
    return stream;
  };
  return { sessions, reported, calls, open };
}

describe('StalledCalls', () => {
  it('reports the session of a call still open at the fourth quarter after the one it opened in, not before', () => {
    const { sessions, reported, calls, open } = harness();
    open(sessions[0]!);
    for (let q = 1; q <= 3; q++) {
      calls.tick();
      expect(reported).toEqual([]);
    }
    calls.tick();
    expect(reported).toEqual([sessions[0]]);
  });

  it('never reports a call closed before then, nor a session whose calls all closed, while calls keep coming', () => {
    const { sessions, reported, calls, open } = harness();
    for (let q = 0; q < 40; q++) {
      const streams = [open(sessions[0]!), open(sessions[0]!), open(sessions[1]!)];
      calls.tick();
      for (const s of streams) expect(calls.closed(s)).toBe(true);
    }
    expect(reported).toEqual([]);
  });

  it('a stream it did not count (a Watch) is not uncounted, and does not make its session stalled', () => {
    const { sessions, reported, calls } = harness();
    const watch = { session: sessions[1] } as unknown as ServerHttp2Stream;
    expect(calls.closed(watch)).toBe(false);
    for (let q = 0; q < 8; q++) calls.tick();
    expect(reported).toEqual([]);
  });

  it('reports only the session holding the old call, then a younger one a quarter later', () => {
    const { sessions, reported, calls, open } = harness();
    const old = open(sessions[1]!);
    calls.tick();
    open(sessions[0]!); // a quarter younger: reported a quarter later, unless closed
    for (let q = 0; q < 3; q++) calls.tick();
    expect(reported).toEqual([sessions[1]]);
    calls.closed(old);
    reported.length = 0;
    calls.tick();
    expect(reported).toEqual([sessions[0]]);
  });
});
