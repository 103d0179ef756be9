/**
 * grpc.health.v1.Health state (grpc/grpc doc/health-checking.md): one status per service name, '' being
 * the whole server. Check answers the current status (NOT_FOUND for an unknown name); Watch streams it,
 * first the current value, then every change. Wire encoding of the two tiny messages is done here.
 */
export type ServingStatus = 'SERVING' | 'NOT_SERVING';

/** HealthCheckResponse.ServingStatus numbers. */
const STATUS_NUMBER = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;

type Watcher = (encoded: Buffer) => void;

export class HealthService {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Map<string, Set<Watcher>>();

  /** The service names are fixed here: a name a caller sends is looked up, never kept. */
  constructor(services: readonly string[]) {
    for (const s of services) {
      this.statuses.set(s, 'NOT_SERVING');
      this.watchers.set(s, new Set());
    }
  }

  setStatus(service: string, status: ServingStatus): void {
    const watchers = this.watchers.get(service);
    if (watchers === undefined) throw new Error(`health: unknown service ${JSON.stringify(service)}`);
    if (this.statuses.get(service) === status) return;
    this.statuses.set(service, status);
    const encoded = encodeHealthResponse(STATUS_NUMBER[status]);
    for (const w of watchers) w(encoded);
  }

  /** The encoded HealthCheckResponse for `service`, or null when the name is unknown. */
  check(service: string): Buffer | null {
    const status = this.statuses.get(service);
    return status === undefined ? null : encodeHealthResponse(STATUS_NUMBER[status]);
  }

  /**
   * Calls `send` now with the current status and on each change. An unknown name gets SERVICE_UNKNOWN once
   * and nothing after (the names are fixed, so it never becomes known; the call stays open, as the health
   * protocol says): neither the name nor `send` is kept, so a caller's Watch streams of long made-up names
   * hold no more than the streams themselves.
   */
  watch(service: string, send: Watcher): () => void {
    const watchers = this.watchers.get(service);
    const status = this.statuses.get(service);
    send(encodeHealthResponse(status === undefined ? STATUS_NUMBER.SERVICE_UNKNOWN : STATUS_NUMBER[status]));
    if (watchers === undefined) return () => undefined;
    watchers.add(send);
    return () => void watchers.delete(send);
  }
}

/** HealthCheckResponse { ServingStatus status = 1 } — field 1, varint (proto3 omits the 0 default). */
function encodeHealthResponse(status: number): Buffer {
  return status === 0 ? Buffer.alloc(0) : Buffer.from([0x08, status]);
}

/**
 * HealthCheckRequest { string service = 1 }: the service name, or null when the bytes are not that message.
 * Other fields are skipped by wire type; the message is already bounded by the transport's size limit.
 */
export function decodeHealthRequest(buf: Buffer): string | null {
  let service = '';
  let i = 0;
  const varint = (): number | null => {
    let v = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (i >= buf.length) return null;
      const b = buf[i++] as number;
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
    }
    return null;
  };
  while (i < buf.length) {
    const tag = varint();
    // Field numbers are 1 to 2^29 - 1 (protobuf encoding spec): a tag outside is not this message.
    if (tag === null || tag < 8 || tag > 0xffffffff) return null;
    const wire = tag & 7;
    if (wire === 0) {
      if (varint() === null) return null;
    } else if (wire === 2) {
      const len = varint();
      if (len === null || i + len > buf.length) return null;
      if (tag >>> 3 === 1) service = buf.toString('utf8', i, i + len);
      i += len;
    } else if (wire === 1 || wire === 5) {
      i += wire === 1 ? 8 : 4;
      if (i > buf.length) return null;
    } else return null;
  }
  return service;
}
