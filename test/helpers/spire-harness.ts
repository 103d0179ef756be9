import * as grpc from '@grpc/grpc-js';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { authorizationClientClass, tempDir, type CheckResponse } from './verdict-harness';
import { waitFor as pollUntil } from './wait-for';

const run = promisify(execFile);
const BIN = resolve(__dirname, '../../.tools/bin');
export const SPIRE_SERVER = join(BIN, 'spire-server');
export const SPIRE_AGENT = join(BIN, 'spire-agent');

/** Fails loudly (never skips) when the pinned SPIRE binaries are missing. */
export function requireSPIRE(): void {
  for (const bin of [SPIRE_SERVER, SPIRE_AGENT]) {
    if (!existsSync(bin))
      throw new Error(`${bin} is missing: run scripts/setup-tools.sh spire (builds SPIRE v1.13.3 from scripts/tools-spire)`);
  }
}

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => res(port));
    });
  });
}

/** Polls `check` (a throw counts as "not yet") until it holds or the deadline passes. */
export function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000, everyMs = 100): Promise<void> {
  const holds = async (): Promise<boolean> => {
    try {
      return await check();
    } catch {
      return false;
    }
  };
  return pollUntil(holds, what, timeoutMs, everyMs);
}

export interface SPIREOptions {
  trustDomain?: string;
  /** Default X509-SVID TTL of the server (short, to watch rotation). */
  x509SVIDTTLs?: number;
  /**
   * A `disk` UpstreamAuthority: SPIRE's CA becomes an intermediate signed by this CA (PEM files), so SVIDs
   * chain leaf → SPIRE intermediate → this CA, and the bundle holds this CA.
   */
  upstreamCA?: { certPath: string; keyPath: string };
  /**
   * The agent also serves its admin socket (Delegated Identity API) and lets these SPIFFE IDs use it
   * (`authorized_delegates`). Change them with `setAuthorizedDelegates` and a restart of the agent.
   */
  authorizedDelegates?: string[];
}

/**
 * A real SPIRE server and agent (v1.13.3, built from the Go module) on a temp dir and loopback: sqlite
 * datastore, join-token node attestation, unix workload attestation. The agent keeps its key on disk so it
 * can restart without a new join token.
 */
export class SPIRE {
  readonly dir = tempDir('verdict-spire-');
  readonly trustDomain: string;
  readonly serverSocket = join(this.dir, 'server.sock');
  readonly agentSocket = join(this.dir, 'agent.sock');
  readonly agentID: string;
  /** The agent's admin socket; SPIRE wants it outside the Workload API socket's directory. */
  readonly adminSocket = join(tempDir('verdict-spire-admin-'), 'admin.sock');
  private port = 0;
  private server: ChildProcess | null = null;
  private agent: ChildProcess | null = null;
  private joinToken = '';
  private readonly logs: string[] = [];

  constructor(private readonly options: SPIREOptions = {}) {
    this.trustDomain = options.trustDomain ?? 'example.org';
    this.agentID = `spiffe://${this.trustDomain}/agent/test`;
  }

  async start(): Promise<void> {
    requireSPIRE();
    const port = await freePort();
    this.port = port;
    mkdirSync(join(this.dir, 'server-data'));
    mkdirSync(join(this.dir, 'agent-data'));
    writeFileSync(join(this.dir, 'server.conf'), this.serverConf(port));
    writeFileSync(join(this.dir, 'agent.conf'), this.agentConf(port));
    this.server = this.spawn(SPIRE_SERVER, ['run', '-config', join(this.dir, 'server.conf')]);
    await waitFor('spire-server healthy', () => this.healthy(SPIRE_SERVER, this.serverSocket), 60_000, 250);
    const { stdout } = await this.serverCmd(['token', 'generate', '-spiffeID', this.agentID, '-ttl', '600']);
    this.joinToken = /Token:\s*(\S+)/.exec(stdout)?.[1] ?? '';
    if (!this.joinToken) throw new Error(`no join token in: ${stdout}`);
    await this.startAgent();
  }

  async startAgent(): Promise<void> {
    this.agent = this.spawn(SPIRE_AGENT, ['run', '-config', join(this.dir, 'agent.conf'), '-joinToken', this.joinToken]);
    await waitFor('spire-agent healthy', () => this.healthy(SPIRE_AGENT, this.agentSocket), 60_000, 250);
  }

  /** Freezes the agent (SIGSTOP): its socket still accepts connections, but nothing answers on them. */
  pauseAgent(): void {
    if (!this.agent?.kill('SIGSTOP')) throw new Error('spire-agent is not running');
  }

  /** Lets a paused agent run again (SIGCONT); it then serves what queued on its socket. */
  resumeAgent(): void {
    if (!this.agent?.kill('SIGCONT')) throw new Error('spire-agent is not running');
  }

  async stopAgent(): Promise<void> {
    await stopProcess(this.agent);
    this.agent = null;
  }

  /** Rewrites the agent's `authorized_delegates`; takes effect when the agent (re)starts. */
  setAuthorizedDelegates(ids: string[]): void {
    this.options.authorizedDelegates = ids;
    writeFileSync(join(this.dir, 'agent.conf'), this.agentConf(this.port));
  }

  /** Registers an entry under the agent: every process matching all `selectors` (e.g. `unix:uid:1001`) gets `spiffeID`. */
  async registerEntry(spiffeID: string, selectors: string[]): Promise<void> {
    await this.serverCmd([
      'entry',
      'create',
      '-parentID',
      this.agentID,
      '-spiffeID',
      spiffeID,
      ...selectors.flatMap((s) => ['-selector', s]),
    ]);
  }

  /** The SPIFFE ID the agent's Workload API gives this process now (its first X509-SVID), via `spire-agent api fetch`. */
  async fetchX509ID(): Promise<string | undefined> {
    const { stdout } = await run(SPIRE_AGENT, ['api', 'fetch', 'x509', '-socketPath', this.agentSocket, '-timeout', '5s'], {
      timeout: 10_000,
    });
    return /SPIFFE ID:\s*(\S+)/.exec(stdout)?.[1];
  }

  /** Registers a workload entry: every process of this uid gets `spiffeID`. */
  async registerWorkload(spiffeID: string, opts: { x509SVIDTTLs?: number; jwtSVIDTTLs?: number } = {}): Promise<void> {
    const args = ['entry', 'create', '-parentID', this.agentID, '-spiffeID', spiffeID, '-selector', `unix:uid:${process.getuid?.() ?? 0}`];
    if (opts.x509SVIDTTLs) args.push('-x509SVIDTTL', String(opts.x509SVIDTTLs));
    if (opts.jwtSVIDTTLs) args.push('-jwtSVIDTTL', String(opts.jwtSVIDTTLs));
    await this.serverCmd(args);
  }

  async stop(): Promise<void> {
    await stopProcess(this.agent);
    await stopProcess(this.server);
  }

  /**
   * Prepares a new X.509 authority (`localauthority x509 prepare`): SPIRE adds it to the trust bundle at once,
   * so every agent and workload sees a bundle change, while the active authority keeps signing.
   */
  async prepareX509Authority(): Promise<void> {
    await this.serverCmd(['localauthority', 'x509', 'prepare']);
  }

  /** Recent SPIRE output, for failure messages. */
  tail(): string {
    return this.logs.slice(-40).join('');
  }

  private serverCmd(args: string[]): Promise<{ stdout: string }> {
    return run(SPIRE_SERVER, [...args, '-socketPath', this.serverSocket], { timeout: 30_000 });
  }

  private async healthy(bin: string, socket: string): Promise<boolean> {
    await run(bin, ['healthcheck', '-socketPath', socket], { timeout: 10_000 });
    return true;
  }

  private spawn(bin: string, args: string[]): ChildProcess {
    const child = spawn(bin, args, { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (b: Buffer): void => {
      this.logs.push(b.toString());
      if (this.logs.length > 200) this.logs.shift();
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    return child;
  }

  private serverConf(port: number): string {
    const ttl = this.options.x509SVIDTTLs ?? 3600;
    return `server {
  bind_address = "127.0.0.1"
  bind_port = "${port}"
  socket_path = "${this.serverSocket}"
  trust_domain = "${this.trustDomain}"
  data_dir = "${join(this.dir, 'server-data')}"
  log_level = "WARN"
  ca_key_type = "ec-p256"
  ca_ttl = "24h"
  default_x509_svid_ttl = "${ttl}s"
  default_jwt_svid_ttl = "300s"
}
plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
      connection_string = "${join(this.dir, 'server-data', 'datastore.sqlite3')}"
    }
  }
  NodeAttestor "join_token" {
    plugin_data {}
  }
  KeyManager "memory" {
    plugin_data {}
  }${this.upstreamAuthorityConf()}
}
`;
  }

  private upstreamAuthorityConf(): string {
    const up = this.options.upstreamCA;
    if (!up) return '';
    return `
  UpstreamAuthority "disk" {
    plugin_data {
      cert_file_path = "${up.certPath}"
      key_file_path = "${up.keyPath}"
    }
  }`;
  }

  private adminConf(): string {
    const ids = this.options.authorizedDelegates;
    if (!ids) return '';
    return `
  admin_socket_path = "${this.adminSocket}"
  authorized_delegates = [${ids.map((id) => JSON.stringify(id)).join(', ')}]`;
  }

  private agentConf(port: number): string {
    return `agent {
  data_dir = "${join(this.dir, 'agent-data')}"
  log_level = "WARN"
  server_address = "127.0.0.1"
  server_port = "${port}"
  socket_path = "${this.agentSocket}"
  trust_domain = "${this.trustDomain}"
  insecure_bootstrap = true${this.adminConf()}
}
plugins {
  NodeAttestor "join_token" {
    plugin_data {}
  }
  KeyManager "disk" {
    plugin_data {
      directory = "${join(this.dir, 'agent-data')}"
    }
  }
  WorkloadAttestor "unix" {
    plugin_data {}
  }
}
`;
  }
}

function stopProcess(child: ChildProcess | null): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolveStop) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolveStop();
    });
    child.kill('SIGTERM');
  });
}

/** A Check client over mTLS with an SVID, that accepts the server only if it presents `serverID`. */
export function mtlsCheckClient(
  target: string,
  tls: { rootsPEM: string; certPEM?: string; keyPEM?: string; serverID: string },
): { check(req: unknown): Promise<CheckResponse>; close(): void; serverSerials: string[] } {
  const serverSerials: string[] = [];
  const Ctor = authorizationClientClass();
  const creds = grpc.credentials.createSsl(
    Buffer.from(tls.rootsPEM),
    tls.keyPEM ? Buffer.from(tls.keyPEM) : null,
    tls.certPEM ? Buffer.from(tls.certPEM) : null,
    {
      // An SVID names a SPIFFE ID, not a host: check the URI SAN instead of the hostname.
      checkServerIdentity: (_host, cert) => {
        // Which certificate the server presented on each handshake, for rotation tests.
        serverSerials.push(cert.serialNumber);
        return cert.subjectaltname?.split(', ').includes(`URI:${tls.serverID}`) ? undefined : new Error(`server is not ${tls.serverID}`);
      },
    },
  );
  const client = new Ctor(target, creds, { 'grpc.use_local_subchannel_pool': 1 });
  const method = (Ctor.service as grpc.ServiceDefinition).Check as grpc.MethodDefinition<unknown, CheckResponse>;
  return {
    check: (req) =>
      new Promise((res, rej) => {
        client.makeUnaryRequest(
          method.path,
          method.requestSerialize,
          method.responseDeserialize,
          req,
          { deadline: Date.now() + 10_000 },
          (err, out) => (err ? rej(err) : res(out as CheckResponse)),
        );
      }),
    close: () => client.close(),
    serverSerials,
  };
}
