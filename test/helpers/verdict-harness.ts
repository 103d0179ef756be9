import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildRegoBundle } from '../../src/cli/bundle-build';
import { loadConfig } from '../../src/config/load-config';
import { startVerdict, type RunningVerdict, type VerdictOptions } from '../../src/main';
import { envoyProtoIncludeDirs, PROTO_OPTIONS } from '../../src/server/envoy-protos';
import { createLogger } from '../../src/telemetry/logger';

export function tempDir(prefix = 'verdict-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Writes Rego (and optional data/manifest) to a temp dir and builds it with the real, pinned opa. */
export async function buildTestBundle(files: Record<string, string>, entrypoint = 'envoy/authz/allow'): Promise<string> {
  const dir = tempDir('verdict-policy-');
  const src = join(dir, 'src');
  mkdirSync(src);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(src, name), text);
  const out = join(dir, 'bundle.tar.gz');
  await buildRegoBundle(src, { out, entrypoints: [entrypoint] });
  return out;
}

/**
 * A verdict on port 0 with logs silenced; `--set`-style overrides. The decision time budget is generous
 * (tests assert decisions, not speed, and share two cores with parallel suites); override it to test it.
 */
export async function startTestVerdict(overrides: string[] = [], options: VerdictOptions = {}): Promise<RunningVerdict> {
  const config = loadConfig({
    overrides: ['server.grpc.port=0', 'server.http.port=0', 'log.level=silent', 'policy.timeoutMs=5000', ...overrides],
  });
  return startVerdict(config, { logger: createLogger('silent'), ...options });
}

/** verdict_decisions_total summed over its labels, read from the running verdict's /metrics. */
export async function decisionsTotal(verdict: RunningVerdict): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${verdict.httpPort}/metrics`)).text();
  return [...text.matchAll(/^verdict_decisions_total\{[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
}

export interface CheckResponse {
  status?: { code?: number; message?: string };
  okResponse?: {
    headers?: { header?: { key?: string; value?: string }; appendAction?: string; append?: { value?: boolean } }[];
    headersToRemove?: string[];
    responseHeadersToAdd?: { header?: { key?: string; value?: string } }[];
    queryParametersToSet?: { key?: string; value?: string }[];
    queryParametersToRemove?: string[];
  };
  deniedResponse?: {
    status?: { code?: string | number };
    headers?: { header?: { key?: string; value?: string } }[];
    body?: string;
  };
  dynamicMetadata?: { fields?: Record<string, { stringValue?: string; numberValue?: number; boolValue?: boolean }> };
}

export interface CheckClient {
  check(request: unknown): Promise<CheckResponse>;
  checkRaw(bytes: Buffer): Promise<CheckResponse>;
  close(): void;
}

/** The generated client class for envoy.service.auth.v3.Authorization (enums decoded as numbers). */
export function authorizationClientClass(): grpc.ServiceClientConstructor {
  const defs = loadSync('envoy/service/auth/v3/external_auth.proto', {
    ...PROTO_OPTIONS,
    enums: Number,
    includeDirs: envoyProtoIncludeDirs(),
  });
  const pkg = grpc.loadPackageDefinition(defs) as unknown as {
    envoy: { service: { auth: { v3: { Authorization: grpc.ServiceClientConstructor } } } };
  };
  return pkg.envoy.service.auth.v3.Authorization;
}

/** A real grpc-js client for envoy.service.auth.v3.Authorization (enums decoded as numbers). */
export function checkClient(target: string, channelOptions: grpc.ChannelOptions = {}): CheckClient {
  const Ctor = authorizationClientClass();
  const client = new Ctor(target, grpc.credentials.createInsecure(), channelOptions);
  const method = (Ctor.service as grpc.ServiceDefinition).Check as grpc.MethodDefinition<unknown, CheckResponse>;
  const call = <T>(req: T, serialize: (v: T) => Buffer): Promise<CheckResponse> =>
    new Promise((resolve, reject) => {
      client.makeUnaryRequest(method.path, serialize, method.responseDeserialize, req, (err, res) =>
        err ? reject(err) : resolve(res as CheckResponse),
      );
    });
  return {
    check: (request) => call(request, method.requestSerialize),
    checkRaw: (bytes) => call(bytes, (b) => b),
    close: () => client.close(),
  };
}

/** A realistic CheckRequest (proto-loader object form) as Envoy sends it for an HTTP request. */
export function httpCheckRequest(opts: {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
  principal?: string;
}): Record<string, unknown> {
  const method = opts.method ?? 'GET';
  const path = opts.path ?? '/';
  return {
    attributes: {
      source: {
        address: { socketAddress: { address: '10.0.0.7', portValue: 51234 } },
        ...(opts.principal ? { principal: opts.principal } : {}),
      },
      destination: { address: { socketAddress: { address: '10.0.0.9', portValue: 8080 } } },
      request: {
        time: { seconds: '1764000000', nanos: 123000000 },
        http: {
          id: '4112930829876185000',
          method,
          headers: {
            ':authority': 'api.example.org',
            ':method': method,
            ':path': path,
            'user-agent': 'curl/8.5.0',
            ...(opts.headers ?? {}),
          },
          path,
          host: 'api.example.org',
          scheme: 'http',
          protocol: 'HTTP/1.1',
          ...(opts.body !== undefined ? { body: opts.body, size: String(Buffer.byteLength(opts.body)) } : {}),
        },
      },
      contextExtensions: { route: 'default' },
    },
  };
}

export function headerValue(list: { header?: { key?: string; value?: string } }[] | undefined, key: string): string | undefined {
  return list?.find((h) => h.header?.key === key)?.header?.value;
}
