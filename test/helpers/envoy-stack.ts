import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeEach } from 'vitest';
import type { RunningVerdict, VerdictOptions } from '../../src/main';
import { packageRoot } from '../../src/package-root';
import { startEnvoy, validateEnvoyConfig, type RunningEnvoy } from './envoy-process';
import { renderEnvoyConfigFile, type TemplateVars } from './envoy-template';
import { buildTestBundle, startTestVerdict, tempDir } from './verdict-harness';
import type { EchoUpstream } from './upstream-echo';

/** Path of a committed Envoy config, e.g. envoyConfig('sidecar-grpc.yaml'). */
export function envoyConfig(name: string): string {
  return join(packageRoot(), 'envoy', name);
}

let e2eBundle: Promise<string> | undefined;

/** The e2e policy (test/e2e/policy/authz.rego), built once per test file with the pinned opa. */
export function e2eBundlePath(): Promise<string> {
  e2eBundle ??= buildTestBundle({ 'authz.rego': readFileSync(join(packageRoot(), 'test', 'e2e', 'policy', 'authz.rego'), 'utf8') });
  return e2eBundle;
}

/** verdict on the e2e policy; short grace so a stop does not wait on Envoy's pooled connection. */
export async function startE2EVerdict(overrides: string[] = [], options: VerdictOptions = {}): Promise<RunningVerdict> {
  return startTestVerdict([`policy.bundle=${await e2eBundlePath()}`, 'server.shutdownGraceMs=200', ...overrides], options);
}

/** Renders envoy/<name> with vars (admin and listeners on port 0), validates it, starts Envoy. */
export async function startEnvoyFor(name: string, vars: TemplateVars): Promise<RunningEnvoy> {
  const dir = tempDir('verdict-envoy-');
  const file = renderEnvoyConfigFile(envoyConfig(name), dir, { ADMIN_PORT: 0, ...vars });
  await validateEnvoyConfig(file);
  return startEnvoy(file, dir);
}

/** Envoy (sidecar-grpc.yaml) in front of an echo upstream, asking the given verdict over gRPC. */
export async function startSidecarEnvoy(verdict: RunningVerdict, upstream: EchoUpstream): Promise<RunningEnvoy> {
  return startEnvoyFor('sidecar-grpc.yaml', {
    LISTENER_PORT: 0,
    VERDICT_PORT: verdict.grpcPort,
    APP_PORT: upstream.port,
    AUTHZ_TIMEOUT: '2s',
  });
}

/** Prints each Envoy's log when a test fails, so a red run says why. */
export function printEnvoyLogsOnFailure(envoys: () => readonly (RunningEnvoy | undefined)[]): void {
  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => {
      for (const e of envoys()) if (e) console.error(`--- envoy (admin :${e.adminPort}) log tail ---\n${e.logs()}`);
    });
  });
}
