import type { Server } from 'node:http';
import type { ServerHttp2Session, ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';

/** Quarters of server.transport.maxUnaryCallMs: a call is found between 3 and 4 of them after it opened. */
const SLOTS = 4;
/** A session's open unary calls by the quarter they opened in (index: quarter % SLOTS), and their close hooks. */
const QUARTERS = Symbol('unaryCallQuarters');
interface Quarters {
  counts: Int32Array;
  closers: (() => void)[];
}
type CountedSession = ServerHttp2Session & { [QUARTERS]?: Quarters };

/**
 * The unary calls open (server.transport.maxOpenCalls counts them), and the connections that hold one open
 * past `maxMs` (server.transport.maxUnaryCallMs). Each call is counted in its session under the quarter of
 * maxMs it opened in, and uncounted by the close hook `opened` returns for its stream; every quarter, a
 * session whose count from four quarters back is not zero has held a call open for 3–4 quarters, and is
 * handed to `onStalled`. Per call that is two increments and two decrements: no timer, no set, and nothing
 * stored on the stream but the hook it has anyway (one closure per session and quarter slot).
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
  opened(stream: ServerHttp2Stream): () => void {
    this.open++;
    const session = stream.session as CountedSession | undefined;
    if (!session) return this.uncounted;
    const quarters = (session[QUARTERS] ??= this.quartersOf());
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
      if (quarters !== undefined && quarters.counts[slot]! > 0) this.onStalled(session);
    }
  }

  private quartersOf(): Quarters {
    const counts = new Int32Array(SLOTS);
    const closers = Array.from({ length: SLOTS }, (_, slot) => () => {
      counts[slot]!--;
      this.open--;
    });
    return { counts, closers };
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
