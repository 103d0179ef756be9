import type { ServerHttp2Session, ServerHttp2Stream } from 'node:http2';
import { describe, expect, it } from 'vitest';
import { RESET_BURST, StalledCalls } from '../../../src/server/stalled-calls';

// The quarter bookkeeping alone, driven by tick() (no timer): sessions and streams are plain objects standing
// in for node:http2's, of which StalledCalls only reads `stream.session` and marks the session with its own
// symbol. test/integration/grpc-open-calls.test.ts runs it over real connections.

function harness() {
  const sessions = [{} as ServerHttp2Session, {} as ServerHttp2Session];
  const reported: ServerHttp2Session[] = [];
  const flooded: ServerHttp2Session[] = [];
  const calls = new StalledCalls(
    1000,
    sessions,
    (s) => reported.push(s),
    (s) => flooded.push(s),
  );
  /** Opens a call on `session`; returns its close hook. */
  const open = (session: ServerHttp2Session | undefined): ((beforeAnswer: boolean) => void) =>
    calls.opened({ session } as unknown as ServerHttp2Stream);
  return { sessions, reported, flooded, calls, open };
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

  it('never reports a call closed before then while calls keep coming, and counts the calls open', () => {
    const { sessions, reported, calls, open } = harness();
    for (let q = 0; q < 40; q++) {
      const closers = [open(sessions[0]!), open(sessions[0]!), open(sessions[1]!)];
      expect(calls.open).toBe(3);
      calls.tick();
      for (const close of closers) close(false);
      expect(calls.open).toBe(0);
    }
    expect(reported).toEqual([]);
  });

  it('counts a call on a stream with no session in `open` only', () => {
    const { reported, calls, open } = harness();
    const close = open(undefined);
    expect(calls.open).toBe(1);
    for (let q = 0; q < 8; q++) calls.tick();
    expect(reported).toEqual([]);
    close(false);
    expect(calls.open).toBe(0);
  });

  it('reports only the session holding the old call, then a younger one a quarter later', () => {
    const { sessions, reported, calls, open } = harness();
    const closeOld = open(sessions[1]!);
    calls.tick();
    open(sessions[0]!); // a quarter younger: reported a quarter later, unless closed
    for (let q = 0; q < 3; q++) calls.tick();
    expect(reported).toEqual([sessions[1]]);
    closeOld(false);
    reported.length = 0;
    calls.tick();
    expect(reported).toEqual([sessions[0]]);
  });

  it(`hands on a session whose calls are reset before their answers past ${RESET_BURST} at once, and only that one`, () => {
    const { sessions, flooded, open } = harness();
    // Answered calls never count, however many.
    for (let i = 0; i < 5 * RESET_BURST; i++) open(sessions[1]!)(false);
    for (let i = 0; i < RESET_BURST; i++) open(sessions[0]!)(true);
    expect(flooded).toEqual([]);
    // The bucket refills at RESET_PER_SECOND: within this loop's few milliseconds that is less than one.
    for (let i = 0; i < 10; i++) open(sessions[0]!)(true);
    expect(flooded.length).toBeGreaterThan(0);
    expect(new Set(flooded)).toEqual(new Set([sessions[0]]));
  });
});
