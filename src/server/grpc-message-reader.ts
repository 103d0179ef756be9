import type { ErrorCode } from '../errors';
import { GrpcStatus, type GrpcStatusCode } from './grpc-status';

const PREFIX_BYTES = 5;
const EMPTY = Buffer.alloc(0);

export interface Refusal {
  status: GrpcStatusCode;
  /** Sent as grpc-message. */
  code: ErrorCode;
  /** Logged at debug level, never sent. */
  why: string;
}

export type UnaryMessage =
  /** The one request message (still compressed when `compressed`). */
  | { kind: 'message'; bytes: Buffer; compressed: boolean }
  /** Larger than maxBytes but within hardMaxBytes: counted and discarded unread, denied with a coded reason. */
  | { kind: 'oversize'; wireBytes: number }
  | { kind: 'refused'; refusal: Refusal };

/** Reserves and releases buffer space against one process-wide budget (bounded memory across streams). */
export interface BufferBudget {
  reserve(bytes: number): boolean;
  release(bytes: number): void;
}

/**
 * Reassembles the single Length-Prefixed-Message of a unary call from DATA chunks (PROTOCOL-HTTP2.md:
 * "DATA frame boundaries have no relation to Length-Prefixed-Message boundaries"). The 5-byte prefix is
 * read first and the length judged before a byte of the body is buffered: beyond hardMaxBytes the call is
 * refused at once, beyond maxBytes the body is counted and dropped. A second message, or bytes after the
 * first, refuse the call; so does end of stream with no message or a partial one.
 */
export class UnaryMessageReader {
  /** Only for a prefix split across chunks (allocated then); a whole one is read from the chunk. */
  private prefix: Buffer | null = null;
  private prefixFilled = 0;
  private compressed = false;
  private length = -1;
  /** The message is at most maxBytes: its bytes are kept (else only counted). */
  private keep = false;
  private body: Buffer | null = null;
  private filled = 0;
  private reserved = 0;
  private done = false;

  constructor(
    private readonly maxBytes: number,
    private readonly hardMaxBytes: number,
    private readonly budget: BufferBudget,
  ) {}

  /** Feeds one DATA chunk; returns a refusal as soon as the call is known bad, else null. */
  push(chunk: Buffer): Refusal | null {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.done) return refuse(GrpcStatus.INTERNAL, 'ERR_GRPC_TOO_MANY_MESSAGES', 'a unary call carries one request message');
      if (this.length >= 0) {
        offset += this.readBody(chunk, offset);
        continue;
      }
      if (this.prefixFilled === 0 && chunk.length - offset >= PREFIX_BYTES) {
        const length = chunk.readUInt32BE(offset + 1);
        const refusal = this.judgePrefix(chunk[offset]!, length);
        if (refusal) return refusal;
        offset += PREFIX_BYTES;
        // The whole message in this chunk (the usual unary call): a view of it, not a copy. node:http2 gives each
        // socket read memory of its own and hands DATA chunks out as views of it; nothing writes there again.
        if (this.keep && length > 0 && chunk.length - offset >= length) {
          this.body = chunk.subarray(offset, offset + length);
          this.filled = length;
          this.done = true;
          offset += length;
        }
        continue;
      }
      const prefix = (this.prefix ??= Buffer.alloc(PREFIX_BYTES));
      const take = Math.min(PREFIX_BYTES - this.prefixFilled, chunk.length - offset);
      chunk.copy(prefix, this.prefixFilled, offset, offset + take);
      this.prefixFilled += take;
      offset += take;
      if (this.prefixFilled === PREFIX_BYTES) {
        const refusal = this.judgePrefix(prefix[0]!, prefix.readUInt32BE(1));
        if (refusal) return refusal;
      }
    }
    return null;
  }

  /** END_STREAM arrived: the message, or why the call is refused. */
  end(): UnaryMessage {
    if (!this.done) {
      this.release();
      return this.length < 0 && this.prefixFilled === 0
        ? { kind: 'refused', refusal: refuse(GrpcStatus.INTERNAL, 'ERR_GRPC_NO_MESSAGE', 'the unary call ended without a request message') }
        : { kind: 'refused', refusal: refuse(GrpcStatus.INTERNAL, 'ERR_GRPC_TRUNCATED', 'the stream ended inside a message') };
    }
    if (!this.keep) return { kind: 'oversize', wireBytes: this.length };
    return { kind: 'message', bytes: this.body ?? EMPTY, compressed: this.compressed };
  }

  /** Gives the buffered bytes back to the budget (call when the call is over, however it ended). */
  release(): void {
    if (this.reserved > 0) this.budget.release(this.reserved);
    this.reserved = 0;
  }

  /** Reads flag and length, and decides from them alone whether the body may be buffered. */
  private judgePrefix(flag: number, length: number): Refusal | null {
    // PROTOCOL-HTTP2.md "Compressed-Flag → 0 / 1"; anything else is a corrupt frame.
    if (flag !== 0 && flag !== 1) return refuse(GrpcStatus.INTERNAL, 'ERR_GRPC_FRAME', 'compressed flag must be 0 or 1');
    this.compressed = flag === 1;
    if (length > this.hardMaxBytes)
      return refuse(GrpcStatus.RESOURCE_EXHAUSTED, 'ERR_REQUEST_TOO_LARGE', `message of ${length} bytes exceeds ${this.hardMaxBytes}`);
    this.length = length;
    if (length <= this.maxBytes) {
      if (!this.budget.reserve(length)) return refuse(GrpcStatus.RESOURCE_EXHAUSTED, 'ERR_GRPC_BUSY', 'request buffer budget exhausted');
      this.reserved = length;
      this.keep = true;
    }
    if (length === 0) this.done = true;
    return null;
  }

  /** Copies (or, oversize, just counts) body bytes; returns how many of the chunk it took. */
  private readBody(chunk: Buffer, offset: number): number {
    const take = Math.min(this.length - this.filled, chunk.length - offset);
    if (this.keep) chunk.copy((this.body ??= Buffer.allocUnsafe(this.length)), this.filled, offset, offset + take);
    this.filled += take;
    if (this.filled === this.length) this.done = true;
    return take;
  }
}

/** A refusal's grpc-message is its stable code alone (nothing from the request echoes back); `why` is for logs. */
export function refuse(status: GrpcStatusCode, code: ErrorCode, why: string): Refusal {
  return { status, code, why };
}
