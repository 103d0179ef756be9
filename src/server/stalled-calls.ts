import type { Server } from 'node:http';
import type { ServerHttp2Session, ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';

/** Quarters of server.transport.maxUnaryCallMs: a call is found between 3 and 4 of them after it opened. */
const SLOTS = 4;
/**
 * Calls a connection may have reset before their answers: a burst, then a rate (HTTP/2 "Rapid Reset",
 * CVE-2023-44487). nghttp2 (1.57 and later) stops reading a connection past 1,000 then 33/s, and sends GOAWAY,
 * but node:http2 leaves the socket open for as long as the client likes, so each such connection held one
 * of maxConnections for ever. Half nghttp2's burst, its rate: this bound trips first and closes it.
 */
export const RESET_BURST = 500;
export const RESET_PER_SECOND = 33;
/** A session's open unary calls by the quarter they opened in (index: quarter % SLOTS), and their close hooks. */
const QUARTERS = Symbol('unaryCallQuarters');
interface Quarters {
  session: ServerHttp2Session;
  counts: Int32Array;
  closers: ((beforeAnswer: boolean) => void)[];
  /** Resets left in the bucket, and when it was last filled (performance.now()). */
  resets: number;
  filledAt: number;
}
type CountedSession = ServerHttp2Session & { [QUARTERS]?: Quarters };

/**
 * The unary calls open (server.transport.maxOpenCalls counts them), and the connections that hold one open
 * past `maxMs` (server.transport.maxUnaryCallMs). Each call is counted in its session under the quarter of
 * maxMs it opened in, and uncounted by the close hook `opened` returns for its stream; every quarter, a
 * session whose count from four quarters back is not zero has held a call open for 3–4 quarters, and is
 * handed to `onStalled`. Per call that is two increments and two decrements: no timer, no set, and nothing
 * stored on the stream but the hook it has anyway (one closure per session and quarter slot). A session whose
 * calls are reset before their answers faster than RESET_BURST then RESET_PER_SECOND goes to `onResetFlood`.
 */
export class StalledCalls {
  /** Unary calls whose stream has not closed. */
  open = 0;
  private quarter = 0;
  private timer: NodeJS.Timeout | undefined;
  /** For a stream with no session (not seen from node:http2's 'stream' event): counted in `open` only. */
  private readonly uncounted = (): void => void this.open--;

  constructor(
    private readonly maxMs: number,
    private readonly sessions: Iterable<ServerHttp2Session>,
    private readonly onStalled: (session: ServerHttp2Session) => void,
    private readonly onResetFlood: (session: ServerHttp2Session) => void,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => this.tick(), this.maxMs / SLOTS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** A unary call opened on `stream`; returns what must run once when the stream closes. */
  opened(stream: ServerHttp2Stream): (beforeAnswer: boolean) => void {
    this.open++;
    const session = stream.session as CountedSession | undefined;
    if (!session) return this.uncounted;
    const quarters = (session[QUARTERS] ??= this.quartersOf(session));
    const slot = this.quarter % SLOTS;
    quarters.counts[slot]!++;
    return quarters.closers[slot]!;
  }

  /** One quarter on: the slot about to be reused holds the calls opened four quarters ago. */
  tick(): void {
    this.quarter++;
    const slot = this.quarter % SLOTS;
    for (const session of this.sessions) {
      const quarters = (session as CountedSession)[QUARTERS];
      if (quarters !== undefined && quarters.counts[slot]! > 0 && !session.destroyed) this.onStalled(session);
    }
  }

  private quartersOf(session: ServerHttp2Session): Quarters {
    const quarters: Quarters = { session, counts: new Int32Array(SLOTS), closers: [], resets: RESET_BURST, filledAt: performance.now() };
    for (let slot = 0; slot < SLOTS; slot++)
      quarters.closers.push((beforeAnswer) => {
        quarters.counts[slot]!--;
        this.open--;
        if (beforeAnswer) this.reset(quarters);
      });
    return quarters;
  }

  /** A call of the session reset before its answer: one from the bucket; an empty bucket is a flood. */
  private reset(q: Quarters): void {
    const now = performance.now();
    q.resets = Math.min(RESET_BURST, q.resets + ((now - q.filledAt) / 1000) * RESET_PER_SECOND);
    q.filledAt = now;
    if (--q.resets >= 0 || q.session.destroyed) return;
    this.onResetFlood(q.session);
  }
}

/**
 * An HTTP/1.1 listener's twin of the bound above: node:http's socket timeout closes a connection on which
 * nothing has moved for `ms` (node looks twice before it acts, so within 2× of it). Without it a client that
 * pipelines requests and never reads the answers keeps its connection, and the answers in both socket buffers,
 * for ever: node:http stops reading its requests, and the keep-alive timeout closes idle connections only.
 * `onStalled` counts the closes that had answers waiting; an idle connection is only closed.
 */
export function closeStalledConnections(server: Server, ms: number, onStalled: () => void): void {
  server.timeout = ms;
  server.on('timeout', (socket: Socket) => {
    if (socket.writableLength > 0) onStalled();
    socket.destroy();
  });
}
