import type * as grpc from '@grpc/grpc-js';
import { createPrivateKey, type KeyObject, type X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Clock } from '../clock';
import { VerdictError } from '../errors';
import { grpcJs } from '../telemetry/grpc-log';
import type { Logger } from '../telemetry/logger';
import type { BundleSource } from './bundle-source';
import { parseTrustDomain } from './spiffe-id';
import { makeTrustBundle, parseDERCertificates, parseJWTBundle, type TrustBundle } from './trust-bundle';
import {
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
}

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
  private readonly x509Authorities = new Map<string, X509Certificate[]>();
  private readonly jwtAuthorities = new Map<string, Map<string, KeyObject>>();
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
    });
    const fresh = (): StreamState => ({
      call: null,
      received: false,
      downSinceMs: null,
      backoffMs: options.reconnectInitialMs,
      timer: null,
      staleTimer: null,
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
    return [...this.x509Authorities.values()].flat();
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
    const down = (why: string): void => {
      if (ended) return;
      ended = true;
      this.onStreamDown(name, why);
    };
    call.on('data', (msg: unknown) => this.onMessage(name, msg));
    call.on('error', (err: grpc.ServiceError) => down(`${err.code} ${err.details}`));
    call.on('end', () => down('stream ended'));
  }

  private onMessage(name: StreamName, msg: unknown): void {
    const state = this.streams[name];
    try {
      if (name === 'x509Bundles') this.applyX509Bundles((msg as X509BundlesResponse).bundles);
      else if (name === 'jwtBundles') this.applyJWTBundles((msg as JWTBundlesResponse).bundles);
      else this.applyX509SVID(msg as X509SVIDResponse);
    } catch (err) {
      // A bad update never replaces good state: keep what we have, say why.
      this.options.logger.error(
        { stream: name, code: (err as VerdictError).code, detail: (err as Error).message },
        'Workload API update refused',
      );
      this.emit('refused', name, err);
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
    this.options.logger.warn({ stream: name, why, retryInMs: delayMs }, 'Workload API stream down; reconnecting');
    state.timer = setTimeout(() => this.open(name), delayMs);
    state.timer.unref();
    this.emitReadyChange();
  }

  private applyX509Bundles(bundles: Record<string, Buffer>): void {
    const next = new Map<string, X509Certificate[]>();
    for (const [td, der] of Object.entries(bundles)) next.set(parseTrustDomain(td), parseDERCertificates(der, `X.509 bundle ${td}`));
    this.x509Authorities.clear();
    for (const [td, certs] of next) this.x509Authorities.set(td, certs);
    this.rebuildBundles();
  }

  private applyJWTBundles(bundles: Record<string, Buffer>): void {
    const next = new Map<string, Map<string, KeyObject>>();
    for (const [td, jwks] of Object.entries(bundles)) next.set(parseTrustDomain(td), parseJWTBundle(parseTrustDomain(td), jwks));
    this.jwtAuthorities.clear();
    for (const [td, keys] of next) this.jwtAuthorities.set(td, keys);
    this.rebuildBundles();
  }

  private applyX509SVID(msg: X509SVIDResponse): void {
    const first = msg.svids[0];
    if (!first) throw new VerdictError('ERR_WORKLOAD_API', 'FetchX509SVID sent no SVID');
    const certificates = parseDERCertificates(first.x509_svid, 'own X509-SVID');
    if (certificates.length === 0) throw new VerdictError('ERR_WORKLOAD_API', 'own X509-SVID has no certificate');
    const privateKey = createPrivateKey({ key: first.x509_svid_key, format: 'der', type: 'pkcs8' });
    const changed = this.ownSVID?.certificates[0]?.fingerprint256 !== certificates[0]?.fingerprint256;
    this.ownSVID = { spiffeID: first.spiffe_id, certificates, privateKey };
    if (changed) this.emit('x509svid', this.ownSVID);
  }

  /** New bundle objects only for trust domains whose authorities changed, so verification caches survive re-sends. */
  private rebuildBundles(): void {
    const next = new Map<string, TrustBundle>();
    const tds = new Set([...this.x509Authorities.keys(), ...this.jwtAuthorities.keys()]);
    let changed = false;
    for (const td of tds) {
      const built = makeTrustBundle(td, this.x509Authorities.get(td) ?? [], this.jwtAuthorities.get(td) ?? new Map());
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
