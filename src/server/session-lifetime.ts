import type { ServerHttp2Session } from 'node:http2';

export interface SessionLifetimeOptions {
  handshakeTimeoutMs: number;
  keepaliveTimeMs: number | null;
  keepaliveTimeoutMs: number;
  idleTimeoutMs: number | null;
  maxConnectionAgeMs: number | null;
  maxConnectionAgeGraceMs: number;
}

/**
 * Connection lifetimes of one HTTP/2 session, as grpc's server keepalive settings mean them
 * (grpc/grpc doc/keepalive.md), and one of verdict's: the session is destroyed when the client's first
 * SETTINGS has not arrived within handshakeTimeoutMs (node:http2 makes the session as the socket is
 * accepted, before the client has sent a byte); a PING every keepaliveTimeMs, the connection destroyed when it is
 * not answered; GOAWAY after idleTimeoutMs without traffic; GOAWAY at max age (±10% so a fleet of
 * connections does not reconnect at once), destroyed after the grace.
 */
export function applySessionLifetime(session: ServerHttp2Session, o: SessionLifetimeOptions): void {
  const handshake = setTimeout(() => session.destroy(), o.handshakeTimeoutMs);
  handshake.unref();
  session.once('remoteSettings', () => clearTimeout(handshake));
  const timers: NodeJS.Timeout[] = [handshake];
  if (o.keepaliveTimeMs !== null) {
    const keepaliveTimeoutMs = o.keepaliveTimeoutMs;
    const ping = (): void => {
      if (session.closed || session.destroyed) return;
      const deadline = setTimeout(() => session.destroy(), keepaliveTimeoutMs);
      deadline.unref();
      const sent = session.ping((err) => {
        clearTimeout(deadline);
        if (err) session.destroy();
      });
      if (!sent) clearTimeout(deadline);
    };
    const interval = setInterval(ping, o.keepaliveTimeMs);
    interval.unref();
    timers.push(interval);
  }
  if (o.idleTimeoutMs !== null) session.setTimeout(o.idleTimeoutMs, () => session.close());
  if (o.maxConnectionAgeMs !== null) {
    const graceMs = o.maxConnectionAgeGraceMs;
    const age = setTimeout(
      () => {
        session.close();
        setTimeout(() => session.destroy(), graceMs).unref();
      },
      o.maxConnectionAgeMs * (0.9 + Math.random() * 0.2),
    );
    age.unref();
    timers.push(age);
  }
  session.once('close', () => {
    for (const t of timers) clearTimeout(t);
  });
}
