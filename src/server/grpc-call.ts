import { constants, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { gunzip, inflate, type InputType, type ZlibOptions } from 'node:zlib';
import type { ErrorCode } from '../errors';
import { refuse, UnaryMessageReader, type BufferBudget, type Refusal } from './grpc-message-reader';
import { GrpcStatus, percentEncodeGrpcMessage, type GrpcStatusCode } from './grpc-status';

/** A request message as the method handler sees it: whole and decompressed, or only its size (oversize). */
export type ReceivedMessage = { kind: 'message'; bytes: Buffer } | { kind: 'oversize'; wireBytes: number };

export type MessageEncoding = 'identity' | 'gzip' | 'deflate';

/** What every call of a server shares (one object, not one per call). */
export interface GrpcCallOptions {
  maxBytes: number;
  hardMaxBytes: number;
  budget: BufferBudget;
  onRefused(refusal: Refusal): void;
}

/** What one call's request headers set. */
export interface GrpcCallHeaders {
  encoding: MessageEncoding;
  /** From grpc-timeout; undefined = no deadline. */
  timeoutMs: number | undefined;
}

// setTimeout's ceiling; a longer deadline is as good as none.
const MAX_TIMER_MS = 2 ** 31 - 1;
const RESPONSE_HEADERS = Object.freeze({
  ':status': 200,
  'content-type': 'application/grpc',
  'grpc-accept-encoding': 'identity,gzip,deflate',
});
const OK_TRAILERS = Object.freeze({ 'grpc-status': '0' });
const WAIT_FOR_TRAILERS = Object.freeze({ waitForTrailers: true });

/**
 * Where a stream keeps its call while the call is open. A stream outlives its call in memory: node:http2's
 * native handle holds its JS stream strongly through every young-generation GC (scavenges do not clear
 * those handles; only a full GC does), so whatever the stream references is copied by each scavenge and
 * promoted to the old generation (docs/memory.md, "What a finished stream keeps alive"). Listeners that close over
 * the call would keep the call, its request and its decision there too; this slot is emptied when the
 * call ends.
 */
const CALL = Symbol('grpcCall');
/** The stream's own close hook (the constructor's `onStreamClose`): the stream outlives its call's end. */
const ON_STREAM_CLOSE = Symbol('onStreamClose');
type CallStream = ServerHttp2Stream & { [CALL]?: GrpcCall | null; [ON_STREAM_CLOSE]?: (beforeAnswer: boolean) => void };

/** 'wantTrailers' listener (Node emits it once per stream; `this` is the stream): one function for every call. */
function sendOkTrailers(this: ServerHttp2Stream): void {
  this.sendTrailers(OK_TRAILERS);
}
type Inflate = (buf: InputType, options: ZlibOptions, cb: (err: Error | null, out: Buffer) => void) => void;
const INFLATERS: Record<Exclude<MessageEncoding, 'identity'>, Inflate> = { gzip: gunzip, deflate: inflate };

/**
 * One gRPC call on one HTTP/2 stream, server side: reads the single request message (see
 * UnaryMessageReader), enforces the deadline, notices cancellation (RST_STREAM from the client), and writes
 * the answer — a unary response, a stream of messages, or a status. After the call is over (answered,
 * refused, timed out, reset) every later write is a no-op, so a late decision is simply dropped.
 */
export class GrpcCall {
  private readonly reader: UnaryMessageReader;
  private timer: NodeJS.Timeout | undefined;
  private over = false;
  private streaming = false;
  private pendingTrailers: Record<string, string> | null = null;
  private cancelListeners: (() => void)[] | null = null;

  /**
   * `onMessage` is shared by the calls of one method; it reads what it needs of the call (e.g. `headers`).
   * `onStreamClose` runs once when the stream has closed (its answer out, or reset: `beforeAnswer`): until then it
   * holds memory.
   */
  constructor(
    readonly stream: ServerHttp2Stream,
    readonly headers: IncomingHttpHeaders,
    private readonly options: GrpcCallOptions,
    private readonly encoding: MessageEncoding,
    timeoutMs: number | undefined,
    private readonly onMessage: (call: GrpcCall, message: ReceivedMessage) => void,
    onStreamClose: (beforeAnswer: boolean) => void,
  ) {
    this.reader = new UnaryMessageReader(options.maxBytes, options.hardMaxBytes, options.budget);
    (stream as CallStream)[CALL] = this;
    (stream as CallStream)[ON_STREAM_CLOSE] = onStreamClose;
    // 'end' and 'close' come once per stream: `on` spares the once-wrapper each call would allocate.
    stream.on('data', GrpcCall.onData);
    stream.on('end', GrpcCall.onEnd);
    stream.on('close', GrpcCall.onClose);
    if (timeoutMs !== undefined && timeoutMs <= MAX_TIMER_MS) this.timer = setTimeout(GrpcCall.onDeadline, timeoutMs, this);
  }

  /** True while an answer can still be sent. */
  get open(): boolean {
    return !this.over && !this.stream.destroyed;
  }

  /** Runs when the call ends without an answer from the handler (reset by the client, deadline, shutdown). */
  onCancel(listener: () => void): void {
    (this.cancelListeners ??= []).push(listener);
  }

  /** Unary answer: headers, one Length-Prefixed-Message, trailers with OK. */
  sendUnary(message: Buffer): void {
    this.sendUnaryFramed(frame(message));
  }

  /** The same with a message already framed (5-byte prefix included). */
  sendUnaryFramed(framed: Buffer): void {
    if (!this.open) return;
    this.end();
    const stream = this.stream;
    stream.respond(RESPONSE_HEADERS, WAIT_FOR_TRAILERS);
    stream.on('wantTrailers', sendOkTrailers);
    stream.end(framed);
  }

  /** Server streaming: one more message (headers go out before the first). */
  write(message: Buffer): void {
    if (!this.open) return;
    if (!this.streaming) {
      this.streaming = true;
      this.stream.respond(RESPONSE_HEADERS, WAIT_FOR_TRAILERS);
      this.stream.once('wantTrailers', () => this.stream.sendTrailers(this.pendingTrailers ?? OK_TRAILERS));
    }
    this.stream.write(frame(message));
  }

  /** Ends the call with a status: in trailers after streamed messages, else as Trailers-Only. */
  finish(status: GrpcStatusCode, code?: ErrorCode): void {
    if (!this.open) return;
    this.end();
    const trailers: Record<string, string> = { 'grpc-status': String(status) };
    if (code !== undefined) trailers['grpc-message'] = percentEncodeGrpcMessage(code);
    if (this.streaming) {
      this.pendingTrailers = trailers;
      this.stream.end();
      return;
    }
    // PROTOCOL-HTTP2.md "Trailers-Only": one HEADERS frame with :status, content-type and the status.
    this.stream.respond({ ...RESPONSE_HEADERS, ...trailers }, { endStream: true });
    // "Early Server Closure": trailers before the client's END_STREAM are followed by RST_STREAM(NO_ERROR).
    if (!this.stream.readableEnded) this.stream.close(constants.NGHTTP2_NO_ERROR);
  }

  refuse(refusal: Refusal): void {
    this.options.onRefused(refusal);
    this.finish(refusal.status, refusal.code);
  }

  // The stream's listeners are the same functions for every call (`this` is the stream); they find the call
  // through the stream's CALL slot, which `end` empties (see CALL).
  private static onData(this: CallStream, chunk: Buffer): void {
    const call = this[CALL];
    if (!call) return;
    const refusal = call.reader.push(chunk);
    if (refusal) call.refuse(refusal);
  }

  private static onEnd(this: CallStream): void {
    this[CALL]?.received();
  }

  private static onClose(this: CallStream): void {
    const call = this[CALL];
    // A call still in its slot was not over: its stream was reset (by the client, or by a connection's end).
    this[ON_STREAM_CLOSE]?.(call != null);
    if (!call) return;
    call.notifyCancel();
    call.end();
  }

  private static onDeadline(call: GrpcCall): void {
    call.timer = undefined;
    if (!call.open) return;
    call.notifyCancel();
    call.refuse(refuse(GrpcStatus.DEADLINE_EXCEEDED, 'ERR_GRPC_DEADLINE', 'the deadline passed before the answer'));
  }

  private received(): void {
    const read = this.reader.end();
    if (read.kind === 'refused') return this.refuse(read.refusal);
    if (read.kind === 'oversize') return this.onMessage(this, read);
    if (!read.compressed) return this.onMessage(this, { kind: 'message', bytes: read.bytes });
    this.decompress(read.bytes);
  }

  /** grpc-encoding gzip/deflate: inflated on the thread pool, output capped at hardMaxBytes (zip bombs). */
  private decompress(bytes: Buffer): void {
    const encoding = this.encoding;
    if (encoding === 'identity') {
      // PROTOCOL-HTTP2.md: without Message-Encoding the Compressed-Flag must be 0.
      return this.refuse(refuse(GrpcStatus.INTERNAL, 'ERR_GRPC_ENCODING', 'compressed flag set without grpc-encoding'));
    }
    INFLATERS[encoding](bytes, { maxOutputLength: this.options.hardMaxBytes }, (err, out) => {
      if (!this.open) return;
      if (err) {
        const tooBig = (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
        return this.refuse(
          tooBig
            ? refuse(GrpcStatus.RESOURCE_EXHAUSTED, 'ERR_REQUEST_TOO_LARGE', 'inflated message exceeds the hard limit')
            : refuse(GrpcStatus.INTERNAL, 'ERR_GRPC_ENCODING', `cannot ${encoding}-inflate the message`),
        );
      }
      this.onMessage(
        this,
        out.length > this.options.maxBytes ? { kind: 'oversize', wireBytes: out.length } : { kind: 'message', bytes: out },
      );
    });
  }

  private notifyCancel(): void {
    const listeners = this.cancelListeners ?? [];
    this.cancelListeners = null;
    for (const l of listeners) l();
  }

  /** The call is over: timers stopped, buffered bytes returned to the budget, the stream let go of it. */
  private end(): void {
    this.over = true;
    (this.stream as CallStream)[CALL] = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.reader.release();
  }
}

/** Length-Prefixed-Message: flag 0 (uncompressed), 4-byte big-endian length, the message. */
export function frame(message: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}
