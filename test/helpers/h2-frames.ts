import http2 from 'node:http2';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';

// HTTP/2 frames written by hand (RFC 9113 §4.1), for what node:http2's client will not send: a HEADERS
// block continued for ever, streams reset as soon as they open, control frames faster than their acks
// are read. Header blocks are HPACK literals without indexing (RFC 7541 §6.2.2), so no dynamic table
// state is involved.

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 };
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 };
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK integer with an n-bit prefix (RFC 7541 §5.1), the first byte's high bits `high`. */
function hpackInt(value: number, prefixBits: number, high: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [high | value];
  const out = [high | max];
  for (value -= max; value >= 128; value >>= 7) out.push((value & 0x7f) | 0x80);
  out.push(value);
  return out;
}

/** Literal header fields without indexing, new names (RFC 7541 §6.2.2, the 0000 0000 form). */
export function headerBlock(fields: [string, string][]): Buffer {
  const bytes: number[] = [];
  for (const [name, value] of fields) {
    bytes.push(0x00, ...hpackInt(name.length, 7, 0), ...Buffer.from(name, 'latin1'));
    bytes.push(...hpackInt(value.length, 7, 0), ...Buffer.from(value, 'latin1'));
  }
  return Buffer.from(bytes);
}

export function grpcRequestHeaders(path: string): Buffer {
  return headerBlock([
    [':method', 'POST'],
    [':scheme', 'http'],
    [':path', path],
    [':authority', 'verdict'],
    ['content-type', 'application/grpc'],
    ['te', 'trailers'],
  ]);
}

/** A raw connection, and what the server sent on it before it closed: the error codes of its GOAWAY frames. */
/** HTTP/2 Rapid Reset (CVE-2023-44487): `count` streams on `path`, each opened by HEADERS and reset (CANCEL) at once. */
export function rapidResetBurst(path: string, count: number): Buffer {
  const headers = grpcRequestHeaders(path);
  const cancel = Buffer.alloc(4);
  cancel.writeUInt32BE(http2.constants.NGHTTP2_CANCEL);
  const burst: Buffer[] = [];
  for (let i = 0, id = 1; i < count; i++, id += 2)
    burst.push(frame(FRAME.HEADERS, FLAG.END_HEADERS, id, headers), frame(FRAME.RST_STREAM, 0, id, cancel));
  return Buffer.concat(burst);
}

export interface RawH2 {
  socket: Socket;
  write(bytes: Buffer): boolean;
  /** Resolves when the server has closed the connection (or reset it), with the GOAWAY error codes seen, in order. */
  closed: Promise<{ goawayCodes: number[] }>;
}

/**
 * Opens a TCP connection, sends the preface and an empty SETTINGS. With `read` false the client never reads
 * (so acks and answers pile up on the server's side); the close is then seen as a reset or end.
 */
export async function rawH2(port: number, read = true): Promise<RawH2> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  let pending = Buffer.alloc(0);
  const goawayCodes: number[] = [];
  if (read)
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 9) {
        const len = pending.readUIntBE(0, 3);
        if (pending.length < 9 + len) break;
        if (pending[3] === FRAME.GOAWAY && len >= 8) goawayCodes.push(pending.readUInt32BE(9 + 4));
        pending = pending.subarray(9 + len);
      }
    });
  else socket.pause();
  const closed = new Promise<{ goawayCodes: number[] }>((resolve) => socket.once('close', () => resolve({ goawayCodes })));
  await once(socket, 'connect');
  socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0)]));
  return { socket, write: (bytes) => socket.write(bytes), closed };
}
