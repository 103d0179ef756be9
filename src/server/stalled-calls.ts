import type { ServerHttp2Session, ServerHttp2Stream } from 'node:http2';

/** Quarters of server.transport.maxUnaryCallMs: a call is found between 3 and 4 of them after it opened. */
const SLOTS = 4;
/** A session's open unary calls, by the quarter they opened in (index: quarter % SLOTS). */
const OPENED = Symbol('openedByQuarter');
/** On a stream: its session's counts, and the slot it is counted in (the session may be gone at close). */
const COUNTS = Symbol('openedCounts');
const SLOT = Symbol('openedSlot');
type CountedSession = ServerHttp2Session & { [OPENED]?: Int32Array };
type CountedStream = ServerHttp2Stream & { [COUNTS]?: Int32Array; [SLOT]?: number };

/**
 * Finds connections that hold a unary call open past `maxMs` (server.transport.maxUnaryCallMs). Each call is
 * counted in its session under the quarter of maxMs it opened in, and uncounted when its stream closes; every
 * quarter, a session whose count from four quarters back is not zero has a call open for 3–4 quarters, and
 * is handed to `onStalled`. Per call that is two stores on the stream and two increments: no timer, no set.
 */
export class StalledCalls {
  private quarter = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly maxMs: number,
    private readonly sessions: Iterable<ServerHttp2Session>,
    private readonly onStalled: (session: ServerHttp2Session) => void,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => this.tick(), this.maxMs / SLOTS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** A unary call opened on `stream`. */
  opened(stream: ServerHttp2Stream): void {
    const session = stream.session as CountedSession | undefined;
    if (!session) return;
    const counts = (session[OPENED] ??= new Int32Array(SLOTS));
    const slot = this.quarter % SLOTS;
    counts[slot]!++;
    (stream as CountedStream)[COUNTS] = counts;
    (stream as CountedStream)[SLOT] = slot;
  }

  /** The stream of a call `opened` counted has closed; false if it was not counted (e.g. a Watch). */
  closed(stream: ServerHttp2Stream): boolean {
    const counts = (stream as CountedStream)[COUNTS];
    if (counts === undefined) return false;
    counts[(stream as CountedStream)[SLOT]!]!--;
    return true;
  }

  /** One quarter on: the slot about to be reused holds the calls opened four quarters ago. */
  tick(): void {
    this.quarter++;
    const slot = this.quarter % SLOTS;
    for (const session of this.sessions) {
      const counts = (session as CountedSession)[OPENED];
      if (counts !== undefined && counts[slot]! > 0) this.onStalled(session);
    }
  }
}
