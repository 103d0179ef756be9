import type * as grpc from '@grpc/grpc-js';
import { createPrivateKey, type KeyObject, type X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Clock } from '../clock';
import { VerdictError } from '../errors';
import { grpcJs } from '../telemetry/grpc-log';
import type { Logger } from '../telemetry/logger';
import type { BundleSource } from './bundle-source';
import { keyLimitProblem } from './key-limits';
import { parseSPIFFEID, parseTrustDomain } from './spiffe-id';
import { makeTrustBundle, parseDERCertificates, parseJWTBundle, type TrustBundle } from './trust-bundle';
import {
  AGENT_FIRST_MESSAGE_TIMEOUT_MS,
  agentKeepaliveOptions,
  loadWorkloadAPIClientConstructor,
  workloadAPIMetadata,
  workloadAPITarget,
  type JWTBundlesResponse,
  type JWTSVIDResponse,
  type ValidateJWTSVIDResponse,
  type X509BundlesResponse,
  type X509SVIDResponse,
} from './workload-api-protos';

export interface WorkloadAPIClientOptions {
  /** SPIFFE_ENDPOINT_SOCKET form: `unix:///path`, `unix:/path` or a bare path. */
  socket: string;
  clock: Clock;
  logger: Logger;
  reconnectInitialMs: number;
  reconnectMaxMs: number;
  /** Bundles are stale once a bundle stream has been down this long. */
  bundleStalenessMs: number;
  /** Also stream the caller's own X509-SVID (for verdict's mTLS listener, or its chain's intermediates). */
  fetchX509SVID: boolean;
  /** Readiness waits for the own SVID (the mTLS listener needs it; intermediates alone do not). Default: fetchX509SVID. */
  x509SVIDRequired?: boolean;
  /** A stream whose first message has not come this long after it opened is cancelled and reopened. */
  firstMessageTimeoutMs?: number;
  /** Updates of one stream are applied at most this often; the latest one waits, those between are dropped. */
  minUpdateIntervalMs?: number;
  /** HTTP/2 PING interval on the agent connection, to see an agent that froze after it delivered. */
  keepaliveTimeMs?: number;
}

/**
 * Bounds on what the agent sends (docs/identity.md "Hostile input"). The agent is normally trusted, but a
 * broken or compromised one must not crash verdict, block its event loop or grow its memory without bound.
 * A message is at most 4 MiB (grpc-js's default, set here so it cannot drift; SPIRE's bundles are KiBs);
 * an update names at most 1000 trust domains and holds at most 1000 certificates (each ~0.2 ms to parse
 * here: 4 MiB of small certificates took 2.6 s) or 1000 JWT keys in all.
 */
const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
const MAX_TRUST_DOMAINS = 1000;
const MAX_AUTHORITIES_PER_UPDATE = 1000;
// At most one parse per second per stream: a flood of (large) updates costs at most ~20% of the loop.
const DEFAULT_MIN_UPDATE_INTERVAL_MS = 1_000;
const MAX_DETAIL_CHARS = 200;

/** verdict's own identity, as FetchX509SVID delivers it (the default, first SVID: Workload API §5.3). */
export interface OwnX509SVID {
  spiffeID: string;
  certificates: X509Certificate[];
  privateKey: KeyObject;
}

type StreamName = 'x509Bundles' | 'jwtBundles' | 'x509SVID';

interface StreamState {
  call: grpc.ClientReadableStream<unknown> | null;
  received: boolean;
  /** Wall-clock ms when the stream went down; null while it is up. */
  downSinceMs: number | null;
  backoffMs: number;
  timer: NodeJS.Timeout | null;
  /** Fires when the outage crosses bundleStalenessMs, so readiness flips without waiting for traffic. */
  staleTimer: NodeJS.Timeout | null;
  /** When the last update was applied (monotonic ms), and the newest one waiting for minUpdateIntervalMs. */
  appliedAtMs: number;
  pending: unknown;
  pendingTimer: NodeJS.Timeout | null;
}

/** One trust domain's parsed bundle, with the bytes it came from: a re-sent, identical entry is not parsed again. */
interface Parsed<T> {
  raw: Buffer;
  value: T;
}

/**
 * SPIFFE Workload API client: keeps FetchX509Bundles and FetchJWTBundles (and, for verdict's own identity,
 * FetchX509SVID) open, applies every update as it arrives, and reconnects with capped, jittered exponential
 * backoff when the agent goes away. Implements BundleSource for the verifiers.
 * Events: 'bundles' (a trust domain's bundle changed), 'x509svid' (OwnX509SVID rotated), 'ready' (ready flipped),
 * 'reconnected' (a stream that was down delivered again), 'refused' (an update did not parse; the old state stays).
 */
export class WorkloadAPIClient extends EventEmitter implements BundleSource {
  private readonly client: grpc.Client;
  private readonly streams: Record<StreamName, StreamState>;
  private x509Authorities = new Map<string, Parsed<X509Certificate[]>>();
  private jwtAuthorities = new Map<string, Parsed<Map<string, KeyObject>>>();
  private bundles = new Map<string, TrustBundle>();
  private ownSVID: OwnX509SVID | null = null;
  private closed = false;
  private lastReady = false;

  constructor(private readonly options: WorkloadAPIClientOptions) {
    super();
    const Ctor = loadWorkloadAPIClientConstructor();
    this.client = new Ctor(workloadAPITarget(options.socket), grpcJs().credentials.createInsecure(), {
      'grpc.initial_reconnect_backoff_ms': options.reconnectInitialMs,
      'grpc.max_reconnect_backoff_ms': options.reconnectMaxMs,
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      ...agentKeepaliveOptions(options.keepaliveTimeMs),
    });
    const fresh = (): StreamState => ({
      call: null,
      received: false,
      downSinceMs: null,
      backoffMs: options.reconnectInitialMs,
      timer: null,
      staleTimer: null,
      appliedAtMs: -Infinity,
      pending: undefined,
      pendingTimer: null,
    });
    this.streams = { x509Bundles: fresh(), jwtBundles: fresh(), x509SVID: fresh() };
  }

  start(): void {
    this.open('x509Bundles');
    this.open('jwtBundles');
    if (this.options.fetchX509SVID) this.open('x509SVID');
  }

  close(): void {
    this.closed = true;
    for (const s of Object.values(this.streams)) {
      if (s.timer) clearTimeout(s.timer);
      if (s.staleTimer) clearTimeout(s.staleTimer);
      if (s.pendingTimer) clearTimeout(s.pendingTimer);
      s.call?.cancel();
    }
    this.client.close();
  }

  /** Ready: both bundle kinds (and the own SVID, when asked for) arrived, and no bundle stream is stale. */
  isReady(): boolean {
    const { x509Bundles, jwtBundles, x509SVID } = this.streams;
    if (!x509Bundles.received || !jwtBundles.received) return false;
    if ((this.options.x509SVIDRequired ?? this.options.fetchX509SVID) && !x509SVID.received) return false;
    return !this.isStale();
  }

  bundleForTrustDomain(trustDomain: string): TrustBundle | undefined {
    if (!this.streams.x509Bundles.received || !this.streams.jwtBundles.received) {
      throw new VerdictError('ERR_BUNDLE_UNAVAILABLE', 'no bundles received from the Workload API yet');
    }
    if (this.isStale()) throw new VerdictError('ERR_BUNDLE_UNAVAILABLE', 'Workload API bundles are stale');
    return this.bundles.get(trustDomain);
  }

  /** Every trust domain's X.509 authorities (the CA set for verdict's mTLS listener). */
  allX509Authorities(): X509Certificate[] {
    return [...this.x509Authorities.values()].flatMap((p) => p.value);
  }

  get currentX509SVID(): OwnX509SVID | null {
    return this.ownSVID;
  }

  /** Workload API §6: JWT-SVIDs for the caller, for `audience`. */
  fetchJWTSVID(audience: string[], spiffeID = ''): Promise<{ spiffeID: string; token: string }[]> {
    return this.unary<JWTSVIDResponse>('FetchJWTSVID', { audience, spiffe_id: spiffeID }).then((r) =>
      r.svids.map((s) => ({ spiffeID: s.spiffe_id, token: s.svid })),
    );
  }

  /** Workload API §6: the agent validates a JWT-SVID. */
  validateJWTSVID(audience: string, token: string): Promise<{ spiffeID: string; claims: unknown }> {
    return this.unary<ValidateJWTSVIDResponse>('ValidateJWTSVID', { audience, svid: token }).then((r) => ({
      spiffeID: r.spiffe_id,
      claims: r.claims,
    }));
  }

  private isStale(): boolean {
    const now = this.options.clock.nowMs();
    return [this.streams.x509Bundles, this.streams.jwtBundles].some(
      (s) => s.downSinceMs !== null && now - s.downSinceMs > this.options.bundleStalenessMs,
    );
  }

  private unary<T>(method: string, request: object): Promise<T> {
    return new Promise((resolve, reject) => {
      type Unary = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: T) => void) => void;
      const fn = (this.client as unknown as Record<string, Unary>)[method] as Unary;
      fn.call(this.client, request, workloadAPIMetadata(), { deadline: Date.now() + 10_000 }, (err, res) =>
        err || !res
          ? reject(new VerdictError('ERR_WORKLOAD_API', `${method}: ${err?.details ?? 'no response'}`, { cause: err }))
          : resolve(res),
      );
    });
  }

  private open(name: StreamName): void {
    if (this.closed) return;
    const state = this.streams[name];
    state.timer = null;
    const method = { x509Bundles: 'FetchX509Bundles', jwtBundles: 'FetchJWTBundles', x509SVID: 'FetchX509SVID' }[name];
    const call = (this.client as unknown as Record<string, (req: object, md: grpc.Metadata) => grpc.ClientReadableStream<unknown>>)[
      method
    ]!.call(this.client, {}, workloadAPIMetadata());
    state.call = call;
    let ended = false;
    // Start-up (and every reconnect) is bounded: a stream that stays silent is cancelled, which reopens it.
    const silent = setTimeout(() => {
      this.refuse(name, new VerdictError('ERR_WORKLOAD_API', `${method} sent no message within ${this.firstMessageTimeoutMs} ms`));
      call.cancel();
    }, this.firstMessageTimeoutMs);
    silent.unref();
    const down = (why: string): void => {
      clearTimeout(silent);
      if (ended) return;
      ended = true;
      this.onStreamDown(name, why);
    };
    call.on('data', (msg: unknown) => {
      clearTimeout(silent);
      this.onMessage(name, msg);
    });
    // grpc-js's own statuses (RESOURCE_EXHAUSTED for a message over MAX_MESSAGE_BYTES, CANCELLED) or the agent's.
    call.on('error', (err: grpc.ServiceError) => down(`${err.code} ${(err.details ?? '').slice(0, MAX_DETAIL_CHARS)}`));
    call.on('end', () => down('stream ended'));
  }

  private get firstMessageTimeoutMs(): number {
    return this.options.firstMessageTimeoutMs ?? AGENT_FIRST_MESSAGE_TIMEOUT_MS;
  }

  /** Applies `msg` now, or once minUpdateIntervalMs has passed since the last one (only the newest waits). */
  private onMessage(name: StreamName, msg: unknown): void {
    const state = this.streams[name];
    const interval = this.options.minUpdateIntervalMs ?? DEFAULT_MIN_UPDATE_INTERVAL_MS;
    const waitMs = state.appliedAtMs + interval - performance.now();
    if (waitMs > 0) {
      state.pending = msg;
      state.pendingTimer ??= setTimeout(() => {
        state.pendingTimer = null;
        const next = state.pending;
        state.pending = undefined;
        if (!this.closed) this.onMessage(name, next);
      }, waitMs);
      return;
    }
    state.appliedAtMs = performance.now();
    this.apply(name, msg);
  }

  private refuse(name: StreamName, err: unknown): void {
    this.options.logger.error(
      { stream: name, code: (err as VerdictError).code, detail: String((err as Error).message).slice(0, MAX_DETAIL_CHARS) },
      'Workload API update refused',
    );
    this.emit('refused', name, err);
  }

  private apply(name: StreamName, msg: unknown): void {
    const state = this.streams[name];
    try {
      if (name === 'x509Bundles') this.applyX509Bundles((msg as X509BundlesResponse).bundles);
      else if (name === 'jwtBundles') this.applyJWTBundles((msg as JWTBundlesResponse).bundles);
      else this.applyX509SVID(msg as X509SVIDResponse);
    } catch (err) {
      // A bad update never replaces good state: keep what we have, say why.
      this.refuse(name, err instanceof VerdictError ? err : new VerdictError('ERR_WORKLOAD_API', `${name} update: ${String(err)}`));
      return;
    }
    state.received = true;
    if (state.downSinceMs !== null) this.emit('reconnected', name);
    state.downSinceMs = null;
    if (state.staleTimer) clearTimeout(state.staleTimer);
    state.staleTimer = null;
    state.backoffMs = this.options.reconnectInitialMs;
    this.emitReadyChange();
  }

  private onStreamDown(name: StreamName, why: string): void {
    const state = this.streams[name];
    state.call = null;
    if (this.closed) return;
    if (state.downSinceMs === null) {
      state.downSinceMs = this.options.clock.nowMs();
      state.staleTimer = setTimeout(() => this.emitReadyChange(), this.options.bundleStalenessMs + 1);
      state.staleTimer.unref();
    }
    // Full jitter over the current backoff, then double it up to the cap.
    const delayMs = Math.round(state.backoffMs / 2 + (Math.random() * state.backoffMs) / 2);
    state.backoffMs = Math.min(state.backoffMs * 2, this.options.reconnectMaxMs);
    this.options.logger.warn({ stream: name, code: 'ERR_WORKLOAD_API', why, retryInMs: delayMs }, 'Workload API stream down; reconnecting');
    state.timer = setTimeout(() => this.open(name), delayMs);
    state.timer.unref();
    this.emitReadyChange();
  }

  private applyX509Bundles(bundles: Record<string, Buffer>): void {
    this.x509Authorities = this.perTrustDomain(
      'x509Bundles',
      bundles,
      this.x509Authorities,
      (td, der, budget) => parseDERCertificates(der, `X.509 bundle ${td}`, budget),
      (certs) => certs.length,
    );
    this.rebuildBundles();
  }

  private applyJWTBundles(bundles: Record<string, Buffer>): void {
    this.jwtAuthorities = this.perTrustDomain(
      'jwtBundles',
      bundles,
      this.jwtAuthorities,
      (td, jwks, budget) => parseJWTBundle(td, jwks, budget),
      (keys) => keys.size,
    );
    this.rebuildBundles();
  }

  /**
   * One bundle map of an update (Workload API §5.3, §6.3: every trust domain the agent knows; one absent is
   * gone), parsed trust domain by trust domain, so one bad entry does not hold back the others' rotation. An
   * entry that is refused — its name is not a trust domain (SPIFFE-ID §2.1), two names mean the same trust
   * domain (`example.org`, `spiffe://example.org`), its bundle does not parse — keeps that trust domain's
   * previous bundle (or none: its callers are denied); the refusals are reported once per update. An entry
   * whose bytes are those already applied is not parsed again. Everything kept, new or previous, counts
   * against MAX_AUTHORITIES_PER_UPDATE (first come, first kept), so kept bundles cannot pile up over
   * updates; more trust domains than MAX_TRUST_DOMAINS refuse the whole update.
   */
  private perTrustDomain<T>(
    name: StreamName,
    bundles: Record<string, Buffer>,
    previous: ReadonlyMap<string, Parsed<T>>,
    parse: (td: string, raw: Buffer, budget: number) => T,
    size: (value: T) => number,
  ): Map<string, Parsed<T>> {
    const entries = Object.entries(bundles);
    if (entries.length > MAX_TRUST_DOMAINS)
      throw new VerdictError('ERR_WORKLOAD_API', `${entries.length} trust domains in one update (at most ${MAX_TRUST_DOMAINS})`);
    const named: [string, Buffer][] = [];
    const refused: VerdictError[] = [];
    for (const [key, raw] of entries) {
      try {
        named.push([parseTrustDomain(key), raw]);
      } catch (err) {
        refused.push(err as VerdictError);
      }
    }
    const count = new Map<string, number>();
    for (const [td] of named) count.set(td, (count.get(td) ?? 0) + 1);
    const next = new Map<string, Parsed<T>>();
    let budget = MAX_AUTHORITIES_PER_UPDATE;
    const keep = (td: string, parsed: Parsed<T>): void => {
      const n = size(parsed.value);
      if (n > budget)
        throw new VerdictError('ERR_WORKLOAD_API', `bundle ${td} is over the update's ${MAX_AUTHORITIES_PER_UPDATE} authorities`);
      budget -= n;
      next.set(td, parsed);
    };
    for (const [td, raw] of named) {
      const prior = previous.get(td);
      try {
        if ((count.get(td) ?? 0) > 1) throw new VerdictError('ERR_WORKLOAD_API', `trust domain ${td} is named twice`);
        keep(td, prior && prior.raw.equals(raw) ? prior : { raw, value: parse(td, raw, budget) });
      } catch (err) {
        refused.push(err as VerdictError);
        try {
          if (prior && !next.has(td)) keep(td, prior);
        } catch (over) {
          refused.push(over as VerdictError);
        }
      }
    }
    if (refused.length > 0) {
      const first = refused[0] as VerdictError;
      const err = new VerdictError(first.code, `${refused.length} bundle entries refused, the first: ${first.message}`);
      // Nothing usable at all: the update is refused whole (a first one does not make verdict ready).
      if (next.size === 0) throw err;
      this.refuse(name, err);
    }
    return next;
  }

  private applyX509SVID(msg: X509SVIDResponse): void {
    const first = msg.svids[0];
    if (!first) throw new VerdictError('ERR_WORKLOAD_API', 'FetchX509SVID sent no SVID');
    const spiffeID = parseSPIFFEID(first.spiffe_id).id;
    const certificates = parseDERCertificates(first.x509_svid, 'own X509-SVID');
    const leaf = certificates[0];
    if (!leaf) throw new VerdictError('ERR_WORKLOAD_API', 'own X509-SVID has no certificate');
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey({ key: first.x509_svid_key, format: 'der', type: 'pkcs8' });
    } catch (err) {
      throw new VerdictError('ERR_WORKLOAD_API', 'own X509-SVID key is not a PKCS#8 DER private key', { cause: err });
    }
    // The TLS listener would fail on a key that is not the leaf's, after the good SVID was already replaced.
    if (!leaf.checkPrivateKey(privateKey)) throw new VerdictError('ERR_WORKLOAD_API', 'own X509-SVID key does not match its certificate');
    // The bounds every verdict key obeys: a TLS context refuses a key too small for OpenSSL's security level.
    const weak = keyLimitProblem(leaf.publicKey);
    if (weak !== null) throw new VerdictError('ERR_WORKLOAD_API', `own X509-SVID key ${weak}`);
    const changed = this.ownSVID?.certificates[0]?.fingerprint256 !== leaf.fingerprint256;
    this.ownSVID = { spiffeID, certificates, privateKey };
    if (changed) this.emit('x509svid', this.ownSVID);
  }

  /** New bundle objects only for trust domains whose authorities changed, so verification caches survive re-sends. */
  private rebuildBundles(): void {
    const next = new Map<string, TrustBundle>();
    const tds = new Set([...this.x509Authorities.keys(), ...this.jwtAuthorities.keys()]);
    let changed = false;
    for (const td of tds) {
      const built = makeTrustBundle(td, this.x509Authorities.get(td)?.value ?? [], this.jwtAuthorities.get(td)?.value ?? new Map());
      const prior = this.bundles.get(td);
      if (prior && prior.digest === built.digest) next.set(td, prior);
      else {
        next.set(td, built);
        changed = true;
      }
    }
    if (next.size !== this.bundles.size) changed = true;
    this.bundles = next;
    if (changed) this.emit('bundles', [...next.keys()]);
  }

  private emitReadyChange(): void {
    const ready = this.isReady();
    if (ready !== this.lastReady) {
      this.lastReady = ready;
      this.emit('ready', ready);
    }
  }
}
