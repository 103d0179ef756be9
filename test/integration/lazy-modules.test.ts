import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/package-root';

// A feature that is off costs no memory: its packages are not even loaded (docs/memory.md). The built CLI
// serves in a child process; once it logs "verdict serving", SIGUSR2 makes it print the packages in its
// require cache. The positive cases turn each feature on and see its packages appear, so the check
// cannot pass with the probe broken.

const PROBE = `
process.argv = [process.argv[0], 'verdict', ...JSON.parse(process.env.VERDICT_ARGS)];
process.on('SIGUSR2', () => {
  const names = new Set();
  for (const file of Object.keys(require.cache)) {
    const m = /node_modules\\/((?:@[^/]+\\/)?[^/]+)\\/(?!.*node_modules)/.exec(file);
    if (m && !file.includes('/node_modules/@open-policy-agent/')) names.add(m[1]);
  }
  process.stdout.write(JSON.stringify([...names]) + '\\n');
});
require(${JSON.stringify(join(packageRoot(), 'dist', 'src', 'cli', 'main.js'))});
`;

/** The packages a served `verdict serve <args>` has loaded. */
async function loadedPackages(args: string[]): Promise<string[]> {
  const child = spawn(process.execPath, ['-e', PROBE], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      VERDICT_ARGS: JSON.stringify([
        'serve',
        '--set',
        'server.workers=1',
        '--set',
        'server.grpc.port=0',
        '--set',
        'server.http.port=0',
        ...args,
      ]),
    },
  });
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`verdict exited (${code}) before serving`))),
  );
  try {
    const serving = new Promise<void>((resolve) =>
      createInterface({ input: child.stderr! }).on('line', (line) => {
        if (line.includes('verdict serving')) resolve();
      }),
    );
    await Promise.race([serving, exited]);
    const listed = new Promise<string[]>((resolve) =>
      createInterface({ input: child.stdout! }).once('line', (line) => resolve(JSON.parse(line) as string[])),
    );
    child.kill('SIGUSR2');
    return await Promise.race([listed, exited]);
  } finally {
    child.kill('SIGKILL');
  }
}

const OFF_BY_DEFAULT = [
  '@opentelemetry/sdk-trace',
  '@opentelemetry/exporter-trace-otlp-http',
  '@grpc/grpc-js',
  '@grpc/proto-loader',
  'protobufjs',
  'jose',
];

// Never in the serving process: the config is validated in a worker thread (src/cli/load-config-isolated.ts).
const CONFIG_ONLY = ['zod', 'yaml'];

const dir = mkdtempSync(join(tmpdir(), 'verdict-lazy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A config file naming one OIDC issuer with a static JWK Set (tokens are verified with jose). */
function configWithIssuer(): string {
  const jwk = { ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'ES256' };
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [jwk] }));
  const yaml = [
    'tracing:',
    '  enabled: true',
    'identity:',
    '  jwt:',
    '    issuers:',
    '      - issuer: https://issuer.example',
    `        jwksFile: ${join(dir, 'jwks.json')}`,
    '        audiences: [verdict]',
    '',
  ].join('\n');
  writeFileSync(join(dir, 'issuer.yaml'), yaml);
  return join(dir, 'issuer.yaml');
}

describe('packages of features that are off are not loaded', () => {
  it('default serve: no OpenTelemetry SDK, grpc-js, proto-loader, protobufjs, YAML parser, jose or zod', async () => {
    const loaded = await loadedPackages([]);
    expect(loaded).toContain('prom-client'); // the probe sees packages at all
    for (const name of [...OFF_BY_DEFAULT, ...CONFIG_ONLY]) expect(loaded, name).not.toContain(name);
  });

  it('a config file is read and applied without the YAML parser or zod in the serving process', async () => {
    const loaded = await loadedPackages(['--config', configWithIssuer()]);
    // Its settings took effect: tracing on and an OIDC issuer → the OpenTelemetry SDK and jose.
    for (const name of ['@opentelemetry/sdk-trace', 'jose']) expect(loaded, name).toContain(name);
    for (const name of CONFIG_ONLY) expect(loaded, name).not.toContain(name);
  });

  it.each([
    { name: 'tracing on → the OpenTelemetry SDK', args: ['--set', 'tracing.enabled=true'], expected: ['@opentelemetry/sdk-trace'] },
    {
      name: 'reflection on → grpc-js and proto-loader',
      args: ['--set', 'server.reflection=true', '--set', 'server.reflectionPort=0'],
      expected: ['@grpc/grpc-js', '@grpc/proto-loader'],
    },
  ])('$name', async ({ args, expected }) => {
    const loaded = await loadedPackages(args);
    for (const name of expected) expect(loaded, name).toContain(name);
  });
});
